"""The package's shape (docs/design.md): small modules and classes, imports at
the top, no import cycle, and data flowing one way between the stages."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pcapca"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250
# dependencies imported when their feature is used: an optional one, and one
# whose import is a large part of start-up (docs/design.md, "Start-up")
LATE_IMPORTS = {("stats/plot.py", "matplotlib"), ("stats/plot.py", "matplotlib.pyplot"),
                ("capture/progress.py", "tqdm")}
# each stage may import the stages before it, never one after it
ORDER = ["errors", "times", "escape", "items", "capture", "net", "ca", "filters", "fast", "pipeline",
         "output", "stats", "wireshark", "cli"]
SHARED = {"errors", "times", "escape", "items"}    # the vocabulary every stage uses


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def stage(rel: str) -> str:
    return rel.split("/")[0].removesuffix(".py")


def imported(rel: str, node: ast.ImportFrom) -> str:
    """The module a relative import names, as a path in the package."""
    base = rel.split("/")[:-1]
    base = base[:len(base) - node.level + 1]
    return "/".join(base + (node.module.split(".") if node.module else []))


def test_modules_and_classes_are_small():
    lines = {rel: len((PACKAGE / rel).read_text().splitlines()) for rel, _ in modules()}
    big = [f"{rel}: {n} lines" for rel, n in lines.items() if n > MAX_MODULE_LINES]
    big += [f"{rel}: class {node.name}: {node.end_lineno - node.lineno + 1} lines"
            for rel, tree in modules() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= MAX_CLASS_LINES]
    assert big == []


def test_imports_at_the_top():
    late = []
    for rel, tree in modules():
        top = set(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in top:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                late += [f"{rel}:{node.lineno} {n}" for n in names if (rel, n) not in LATE_IMPORTS]
    assert late == []


def test_stages_import_only_earlier_stages():
    backwards = []
    for rel, tree in modules():
        here = stage(rel)
        if here not in ORDER:
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                there = stage(imported(rel, node) or "__init__")
                if there in ORDER and there != here and there not in SHARED \
                        and ORDER.index(there) > ORDER.index(here):
                    backwards.append(f"{rel} imports {there}")
    assert backwards == []


def test_every_module_belongs_to_a_stage():
    assert {stage(rel) for rel, _ in modules()} - set(ORDER) <= {"__init__", "__main__"}


def test_no_import_cycle():
    graph = {}
    for rel, tree in modules():
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                target = imported(rel, node)
                for candidate in (target + ".py", target + "/__init__.py"):
                    if (PACKAGE / candidate).exists():
                        deps.add(candidate)
        graph[rel] = deps
    seen, path, cycles = set(), [], []

    def visit(node):
        if node in path:
            cycles.append(path[path.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep)
        path.pop()

    for node in sorted(graph):
        visit(node)
    assert cycles == []
