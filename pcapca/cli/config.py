"""``--config FILE.yaml``: filter keys and the writers' defaults.

::

    filter:
      pv: ["SOFT:*", "re:^CORPUS:(dbl|counter)$"]
      not_pv: "*:HEARTBEAT"            # a scalar is a one-element list
      command: ["ReadNotify*", "EventAddResponse"]
      not_command: []
      host: ["10.0.0.0/24"]
      port: [5064]
      since: "2026-11-29T18:44:00Z"
      until: 1795977900.5
    print:
      format: "{timestamp} {pv} {name} {latency}"
      json: false
    annotate:
      comment: "{pv} {command}"
      keep_all: false

The file is read with PyYAML's safe loader only, without anchors and aliases
(``&x``/``*x``: a few lines of them expand to billions of nodes, or to a loop),
at most ``MAX_CONFIG_BYTES`` long and ``MAX_DEPTH`` levels deep. Every problem
(YAML syntax, unknown key, wrong type, bad pattern/address/port/time, bad
format string) is a ``ConfigError`` with one line: ``FILE:LINE: key
'filter.pv': ...``.

``apply_config(args)`` merges the command line over the file: an option given
on the command line replaces the file's value for that key (``--pv`` replaces
the file's whole ``pv`` list), and sets ``args.filter`` (a ``Filter``, or None
when nothing is filtered), ``args.format``, ``args.json``, ``args.comment`` and
``args.keep_all``.
"""
from __future__ import annotations

import difflib
import importlib.util
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError, FormatError
from ..filters import (FILTER_KEYS, MAX_VALUES, Filter, FilterError, check_pattern, parse_host,
                       parse_port, parse_when)
from ..output.template import Template


def _lazy_import(name: str):
    """The module ``name``, executed at its first attribute access (the
    recipe of importlib's documentation)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


yaml = _lazy_import("yaml")      # (loaded when a --config file is read: 12 ms at start-up)

__all__ = ["Config", "ConfigError", "load_config", "apply_config", "CLI_FILTER_OPTIONS"]

# filter key -> command-line option
CLI_FILTER_OPTIONS = {k: "--" + k.replace("_", "-") for k in FILTER_KEYS}

_SECTIONS = {
    "filter": FILTER_KEYS,
    "print": ("format", "json"),
    "annotate": ("comment", "keep_all"),
}


MAX_CONFIG_BYTES = 64 * 1024      # PyYAML's pure-Python parser: 0.4 s at most for this size
MAX_DEPTH = 16                    # a config is 3 levels deep; the composer recurses per level
_loader = None


def _loader_class():
    """PyYAML's SafeLoader refusing anchors, aliases and deep nesting as it
    composes (at the first one, with its line and column), before anything
    is expanded."""
    global _loader
    if _loader is None:
        class Loader(yaml.SafeLoader):
            path = ""
            depth = 0

            def compose_node(self, parent, index):
                event = self.peek_event()
                if event.anchor is not None:
                    mark = event.start_mark
                    where = f"{self.path}:{mark.line + 1}:{mark.column + 1}"
                    if isinstance(event, yaml.AliasEvent):
                        raise ConfigError(f"{where}: YAML aliases (*{event.anchor}) are not "
                                          f"supported; quote a glob that starts with *: "
                                          f"\"*:HEARTBEAT\"")
                    raise ConfigError(f"{where}: YAML anchors (&{event.anchor}) and aliases "
                                      f"are not supported: write each value out")
                if self.depth >= MAX_DEPTH:
                    mark = event.start_mark
                    raise ConfigError(f"{self.path}:{mark.line + 1}:{mark.column + 1}: nested "
                                      f"deeper than {MAX_DEPTH} levels")
                self.depth += 1
                try:
                    return super().compose_node(parent, index)
                finally:
                    self.depth -= 1
        _loader = Loader
    return _loader


@dataclass(frozen=True)
class Config:
    path: Optional[str] = None
    filter: Dict[str, object] = field(default_factory=dict)   # validated Filter.build kwargs
    print_format: Optional[str] = None
    print_json: Optional[bool] = None
    annotate_comment: Optional[str] = None
    annotate_keep_all: Optional[bool] = None


# ------------------------------------------------------------------ loading
class _Reader:
    def __init__(self, path: str, loader: yaml.SafeLoader):
        self.path = path
        self.loader = loader

    def error(self, node, key: Optional[str], message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        where = f" key '{key}':" if key else ""
        return ConfigError(f"{self.path}:{line}:{where} {message}")

    def value(self, node):
        """The Python value of a node, as yaml.safe_load would make it."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:     # e.g. a bad !!int or !!timestamp
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(node, None, " ".join(str(problem).split())) from None

    def mapping(self, node, key: Optional[str], allowed) -> List[Tuple[str, object, object]]:
        """[(name, key node, value node)] of a mapping with only ``allowed`` keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key, f"expected a mapping with keys "
                                        f"{', '.join(allowed)}, got {_kind(node)}")
        out, seen = [], {}
        for knode, vnode in node.value:
            name = self.value(knode) if isinstance(knode, yaml.ScalarNode) else None
            full = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str) or name not in allowed:
                near = f" (did you mean {_near(name, allowed)}?)" if _near(name, allowed) else ""
                raise self.error(knode, full, f"unknown key{near}; "
                                              f"{'keys of ' + repr(key) if key else 'sections'} "
                                              f"are {', '.join(allowed)}")
            if name in seen:
                raise self.error(knode, full, f"given twice (first on line {seen[name]})")
            seen[name] = knode.start_mark.line + 1
            out.append((name, knode, vnode))
        return out


def _near(name, allowed) -> Optional[str]:
    if not isinstance(name, str):
        return None
    near = difflib.get_close_matches(name, allowed, n=1)
    return near[0] if near else None


def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "nothing (null)"
    return f"{node.value!r}"


def _is_null(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _items(r: _Reader, node, key: str) -> List:
    """A list (or one scalar) of scalar nodes."""
    if isinstance(node, yaml.SequenceNode):
        items = node.value
        if len(items) > MAX_VALUES:
            raise r.error(node, key, f"{len(items)} values: at most {MAX_VALUES} per key")
    else:
        items = [node]
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or _is_null(item):
            raise r.error(item, key, f"expected a value or a list of values, got {_kind(item)}")
    return items


def _filter_value(r: _Reader, name: str, node):
    key = f"filter.{name}"
    try:
        if name in ("since", "until"):
            if not isinstance(node, yaml.ScalarNode):
                raise r.error(node, key, f"expected a date-time or epoch seconds, "
                                         f"got {_kind(node)}")
            # The text as written: YAML would turn an unquoted date-time into
            # a datetime (microseconds only) and a number into a float.
            text = node.value
            parse_when(text, name)
            return text
        values = []
        for item in _items(r, node, key):
            value = r.value(item)
            try:
                if name == "host":
                    value = parse_host(value)
                elif name == "port":
                    value = parse_port(value)
                else:
                    value = check_pattern(name, value)
            except FilterError as exc:
                raise r.error(item, key, str(exc)) from None
            values.append(value)
        return values
    except FilterError as exc:
        raise r.error(node, key, str(exc)) from None


def _bool(r: _Reader, node, key: str) -> bool:
    value = r.value(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, bool):
        raise r.error(node, key, f"expected true or false, got {_kind(node)}")
    return value


def _template(r: _Reader, node, key: str) -> str:
    value = r.value(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str):
        raise r.error(node, key, f"expected a format string, got {_kind(node)}")
    try:
        Template(value)
    except FormatError as exc:
        raise r.error(node, key, str(exc)) from None
    return value


def load_config(path: str) -> Config:
    """Read and validate a YAML config file. Raises ConfigError."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB, the most a "
                          f"config file may be (match many PVs with a glob or a re: pattern)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    loader = _loader_class()(text)
    loader.path = path
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"{path}:{line}: not valid YAML: {what}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        r = _Reader(path, loader)
        _check_tags(r, root)
        return _read(r, root)
    finally:
        loader.dispose()


_SAFE_TAGS = frozenset("tag:yaml.org,2002:" + t for t in
                       ("null", "bool", "int", "float", "str", "timestamp", "seq", "map"))


def _check_tags(r: _Reader, root) -> None:
    """Only plain YAML values: no !!python/..., !!binary, !!set, custom tags."""
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if node.tag not in _SAFE_TAGS:
            raise r.error(node, None, f"unsupported YAML tag {node.tag!r}")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.extend((k, v))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _read(r: _Reader, root) -> Config:
    if root is None or _is_null(root):
        return Config(path=r.path)
    kw: Dict[str, object] = {}
    flt: Dict[str, object] = {}
    filter_nodes: Dict[str, object] = {}
    for section, _knode, snode in r.mapping(root, None, tuple(_SECTIONS)):
        if _is_null(snode):
            continue
        nodes = {}
        for name, knode, vnode in r.mapping(snode, section, _SECTIONS[section]):
            key = f"{section}.{name}"
            nodes[name] = vnode
            if _is_null(vnode):
                continue                      # `until:` with nothing: not set
            if section == "filter":
                flt[name] = _filter_value(r, name, vnode)
                filter_nodes[name] = vnode
            elif key == "print.format":
                kw["print_format"] = _template(r, vnode, key)
            elif key == "print.json":
                kw["print_json"] = _bool(r, vnode, key)
            elif key == "annotate.comment":
                kw["annotate_comment"] = _template(r, vnode, key)
            elif key == "annotate.keep_all":
                kw["annotate_keep_all"] = _bool(r, vnode, key)
        if section == "print" and kw.get("print_json") and kw.get("print_format") is not None:
            raise r.error(nodes["json"], "print.json",
                          "json: true and a format cannot both be set")
    if "since" in flt and "until" in flt:
        try:
            Filter.build(since=flt["since"], until=flt["until"])
        except FilterError as exc:
            raise r.error(filter_nodes["until"], "filter.until", str(exc)) from None
    return Config(path=r.path, filter=flt, **kw)


# ------------------------------------------------------------------ merging
def apply_config(args) -> None:
    """Merge the command line over ``--config`` (if any) and set
    ``args.filter``, ``args.format``, ``args.json``, ``args.comment`` and
    ``args.keep_all``. Raises ConfigError (bad file) or FilterError (bad
    option value, message starting with the option)."""
    path = getattr(args, "config", None)
    cfg = load_config(path) if path else Config()

    kwargs = dict(cfg.filter)
    for key in FILTER_KEYS:
        value = getattr(args, key, None)
        if value is None:
            continue
        try:
            Filter.build(**{key: value})
        except FilterError as exc:
            raise FilterError(key, f"{CLI_FILTER_OPTIONS[key]}: {exc}") from None
        kwargs[key] = value
    try:
        flt = Filter.build(**kwargs)
    except FilterError as exc:         # since/until from different sources
        raise FilterError(exc.key, f"--since/--until{' and ' + path if path else ''}: "
                                   f"{exc}") from None
    args.filter = None if flt.is_empty else flt

    # print: a --format or --json on the command line beats both config keys
    fmt, js = getattr(args, "format", None), getattr(args, "json", None)
    if fmt is None and not js:
        fmt = cfg.print_format
        if js is None:
            js = bool(cfg.print_json) and fmt is None
    args.format = fmt
    args.json = bool(js)

    # annotate
    if getattr(args, "comment", None) is None:
        args.comment = cfg.annotate_comment
    keep = getattr(args, "keep_all", None)
    args.keep_all = bool(cfg.annotate_keep_all if keep is None else keep)
