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

import gzip
import glob
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fixture, needs_tshark
from test_robustness import (_lying_reply, blocks, build, isb_counts, offsets, poke_ca,
                             records, replace_payload)

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CAPTURE = re.compile(r"\.(pcap|pcapng|yaml)$")
NOT_RUN = ("time ", "capinfos ", "cat ")
TSHARK_AS_ROOT = 'Running as user "root"'      # tshark's warning in a CI container


def _basic(edit, name="basic.pcap") -> bytes:
    """basic.pcap (or ``name``) with its records (``test_robustness.records``) edited."""
    d = fixture(name).read_bytes()
    recs = records(d)
    edit(recs)
    return build(d[:24], recs)


def _spliced(name: str, frame: int, new, end=None) -> bytes:
    """A pcap fixture with ``new`` (bytes, or a function of the old record)
    in place of the bytes from frame ``frame``'s record to frame ``end``'s."""
    d = fixture(name).read_bytes()
    offs = offsets(d) + [len(d)]
    at = offs[frame - 1]
    upto = offs[end - 1] if end else at
    return d[:at] + (new(d[at:offs[frame]]) if callable(new) else new) + d[upto:]


def _session(edit) -> bytes:
    """session.pcapng with ``edit(bytearray, [(offset, length)] of its
    EPBs, [(offset, type, length)] of its blocks)`` applied."""
    d = bytearray(fixture("session.pcapng").read_bytes())
    edit(d, [(o, n) for o, t, n in blocks(d) if t == 6], blocks(d))
    return bytes(d)


def _tsresol(d, epbs, all_blocks):
    idb = next(o for o, t, n in all_blocks if t == 1)
    i = idb + 16
    while struct.unpack_from("<H", d, i)[0] != 9:            # if_tsresol
        length = struct.unpack_from("<H", d, i + 2)[0]
        i += 4 + length + (-length % 4)
    d[i + 4] = 0x7F


def _drops(d, epbs, all_blocks):
    (isb,) = [o for o, t, n in all_blocks if t == 5]
    isb_counts(d, isb, ifrecv=5000, ifdrop=7)


_GARBAGE = struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 0x7FFFFFFF) + b"garbage!" * 5
_EXTENDED_4GIB = (struct.pack(">HHHHII", 15, 0xFFFF, 6, 0, 0, 99)
                  + struct.pack(">II", 0xFFFFFFF0, 1) + b"abcdefgh")
def _gz(raw: bytes, edit=None) -> bytes:
    """``raw`` gzip-compressed without compressing (stored blocks: the same
    bytes whatever zlib this is, so the docs' compressed offsets hold), then
    ``edit``ed."""
    d = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))
    if edit is not None:
        edit(d)
    return bytes(d)


# the damaged captures of troubleshooting.md, as its comments describe them
DAMAGED = {
    "cut.pcap": lambda: _spliced("basic.pcap", 21, lambda rec: rec[:30], end=55),
    "cuthdr.pcap": lambda: _spliced("basic.pcap", 21, lambda rec: rec[:7], end=55),
    "trunc.pcapng": lambda: _session(lambda d, epbs, _: d.__delitem__(
        slice(epbs[59][0] + epbs[59][1] // 2, None))),
    "garbage.pcap": lambda: _spliced("basic.pcap", 6, _GARBAGE),
    "garbage_end.pcap": lambda: _spliced("basic.pcap", 51, _GARBAGE, end=55),
    "zero.pcap": lambda: _spliced("basic.pcap", 6, lambda rec: rec[:8] + bytes(8)),
    "blocklen.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, epbs[39][0] + 4, 13)),
    "trailer.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, sum(epbs[39]) - 4, 1234)),
    "iface.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, epbs[29][0] + 8, 7)),
    "tsresol.pcapng": lambda: _session(_tsresol),
    "bom.pcapng": lambda: _session(lambda d, epbs, _: d.__setitem__(slice(8, 12), b"XXXX")),
    "hole.pcap": lambda: _basic(lambda recs: recs.__delitem__(19)),
    "snap.pcap": lambda: _basic(lambda recs: recs[16].__setitem__(3, recs[16][3][:80])),
    "dbr99.pcap": lambda: _basic(lambda recs: poke_ca(recs, 16, ">H", 4, 99)),
    "short.pcap": lambda: _basic(lambda recs: poke_ca(recs, 16, ">H", 4, 20)),
    "cmd200.pcap": lambda: _basic(lambda recs: poke_ca(recs, 15, ">H", 0, 200)),
    "count.pcap": lambda: _basic(lambda recs: replace_payload(recs, 16, _lying_reply(2**32 - 1))),
    "claim.pcap": lambda: _basic(lambda recs: replace_payload(recs, 15, _EXTENDED_4GIB)),
    "udp.pcap": lambda: _basic(lambda recs: recs[0].__setitem__(
        3, recs[0][3][:42 + 16] + struct.pack(">H", 200) + recs[0][3][42 + 18:])),
    "dropped.pcapng": lambda: _session(_drops),
    "nofrag.pcap": lambda: _basic(lambda recs: recs.__delitem__(1), "fragments.pcap"),
    "basic.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes()),
    "cut.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes())[:2000],
    "flipped.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes(),
                                   lambda d: d.__setitem__(3000, d[3000] ^ 0xFF)),
    "trailing.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes()) + b"x" * 10,
    "text.gz": lambda: _gz(b"hello\n"),
    "capture.pcap.zst": lambda: bytes.fromhex("28b52ffd") + b"(not really zstd)",
}


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
