"""The commands shown in the docs print what the docs show.

Every ``$ command`` line of README.md and docs/*.md (in a fenced or an
indented block) is followed by the output the docs claim for it. Those that
can run on a clone (their captures are under ``fixtures/`` or written by a
command before them in the same document) are run here, in that order, in
one temporary directory per document, with ``pcapca`` meaning this checkout,
and their output compared with the docs':

- standard error goes where standard output goes, in the order written, as
  on a terminal (in ``pcapca print ... | tail -3`` pcapca's messages come
  first: tail writes when its input ends);
- a line ``...`` (indented or not) stands for any number of lines; a line
  ending in ``...`` for any line starting with the rest; trailing blanks
  are not compared;
- ``$ echo $?`` shows the exit status of the command before it;
- ``$ cat -n FILE`` shows a file the commands after it use: it is written
  from what is shown.

The damaged captures of troubleshooting.md are made first, from the
fixtures, as their comments there say (``DAMAGED``). Commands not run:
timings (``time``), other tools' (``capinfos``, ``cat``), files a user has
and a clone has not (``ca_large.pcap``), ``--plot`` (matplotlib is
optional), tshark's where tshark is not installed (except in CI: see
conftest.needs_tshark).
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import DAMAGED
from tests.conftest import needs_tshark

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CAPTURE = re.compile(r"\.(pcap|pcapng|yaml)$")
NOT_RUN = ("time ", "capinfos ", "cat ")
TSHARK_AS_ROOT = 'Running as user "root"'      # tshark's warning in a CI container


def doc_commands(path: Path):
    """(line number, command, expected output lines) of each ``$ `` line."""
    commands = []
    current = None
    fenced = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.startswith("```"):
            fenced = not fenced
            current = None
            continue
        if fenced:
            text = raw
        elif raw.startswith("    "):
            text = raw[4:]
        else:
            current = None
            continue
        if text.startswith("$ "):
            current = (number, text[2:], [])
            commands.append(current)
        elif current is not None:
            current[2].append(text)
    for number, command, expected in commands:
        while expected and not expected[-1].strip():
            expected.pop()
    return commands


def files_of(command: str):
    words = shlex.split(command, comments=True)
    return [w for w in words if CAPTURE.search(w)]


def outputs_of(command: str):
    """The files a command writes: ``> FILE`` and annotate's OUT."""
    words = shlex.split(command, comments=True)
    out = [w for before, w in zip(words, words[1:]) if before == ">"]
    if words[:2] == ["pcapca", "annotate"]:
        positional = [w for w in words[2:] if not w.startswith("-")]
        inputs = [p for w in positional[:-1] if CAPTURE.search(w)
                  for p in (sorted(glob.glob(w, root_dir=ROOT)) or [w])]
        if len(inputs) > 1:          # annotate IN... DIR
            from pcapca.output.annotate import output_name
            out += [f"{positional[-1]}/{output_name(p)}" for p in inputs]
        else:
            out += positional[1:2]
    return out


def runnable(command: str, made: set) -> bool:
    if command.startswith("cat -n "):
        return True
    if command.startswith(NOT_RUN) or "--plot" in command:
        return False
    words = shlex.split(command, comments=True)
    if not words or words[0] not in ("pcapca", "tshark", "echo", "head", "mkdir", "ls"):
        return False
    made = made | set(outputs_of(command))
    for name in files_of(command):
        if not (name.startswith("fixtures/") or name in made):
            return False
    return True


def matches(expected, actual) -> bool:
    """``actual`` lines against the docs' ``expected`` (with ``...``)."""
    if not expected:
        return not actual
    head, rest = expected[0].rstrip(), expected[1:]
    if head.strip() == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    line = actual[0].rstrip()
    if head.endswith("...") and head != line:
        same = line.startswith(head[:-3].rstrip())
    else:
        same = line == head
    return same and matches(rest, actual[1:])


def run_doc(path: Path, tmp_path: Path):
    """[(line, command, expected, actual lines)] of the runnable commands."""
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pcapca"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pcapca "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", LC_ALL="C.UTF-8")
    for name, make in DAMAGED.items():
        (tmp_path / name).write_bytes(make())
    made = set(DAMAGED)
    results = []
    status = None
    for number, command, expected in doc_commands(path):
        if not runnable(command, made):
            continue
        if command.strip() == "echo $?":
            actual = [str(status)]
        elif command.startswith("cat -n "):
            # the file a document shows this way: made from what it shows
            name = command.split()[2]
            (tmp_path / name).write_text("".join(line.split("\t", 1)[1] + "\n"
                                                 for line in expected))
            made.add(name)
            continue
        else:
            if command.startswith("tshark") and not shutil.which("tshark"):
                if os.environ.get("CI"):
                    needs_tshark()          # (fails: CI installs tshark)
                continue                    # the document's other commands still run
            proc = subprocess.run(["bash", "-c", "exec 2>&1\n" + command], cwd=tmp_path,
                                  env=env, stdout=subprocess.PIPE, timeout=120)
            status = proc.returncode
            actual = [line for line in proc.stdout.decode("utf-8", "replace").splitlines()
                      if not line.startswith(TSHARK_AS_ROOT)]
            made.update(outputs_of(command))
        results.append((number, command, expected, actual))
    return results


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_doc_commands_print_what_the_docs_show(path, tmp_path):
    results = run_doc(path, tmp_path)
    wrong = [f"{path.name}:{number}: $ {command}\n  docs:\n    " + "\n    ".join(expected)
             + "\n  real:\n    " + "\n    ".join(actual)
             for number, command, expected, actual in results
             if not matches(expected, actual)]
    assert not wrong, "\n".join(wrong)
