#!/usr/bin/env python3
"""Fuzz pcapca's capture readers and CA decoder (atheris / libFuzzer).

    python tests/fuzz_readers.py -max_total_time=60 fixtures/
    FUZZ_SECONDS=600 make fuzz

The target feeds the input bytes to ``pcapca.pipeline.decode`` (pcap or
pcapng reader -> decoder -> channel tracker) and consumes every item.  A
crash is any exception other than ``CaptureFormatError`` (not a capture at
all: the CLI exits 2 for it), or an item of an unexpected type, or a
message whose ``{command}`` or ``--json`` fields differ from caproto's repr
and fields of the object built from its bytes, or a PV filter keeping other
records, problems or counts with the filtered print's shortcut
(``pcapca.fast.skim``) than without it, or an exception from (or a character that
is not printable in) a ``--format`` line of every token, a ``--json`` line,
annotate's default comment, or ``pcapca stats``'s report of the input (text
or JSON). The fallback's mutations also write terminal controls (ESC, BEL,
DEL, the 8-bit CSI 0x9b) into the input.

Directory arguments are *seed* directories: the capture files in them (by
magic, not by name) of at most ``MAX_SEED`` bytes, and a gzip-compressed copy
of the four smallest (for the gzip reader), are copied into a working
corpus directory (``out/fuzz-corpus/``, or ``$FUZZ_CORPUS``), and libFuzzer
runs on that directory, so that it never writes into ``fixtures/``.  Every
other argument is passed to libFuzzer unchanged (``-runs=N``,
``-max_total_time=S``, ``-jobs=N``...).  Crash inputs are written to
``out/fuzz-crashes/`` (``-artifact_prefix``).

Without atheris (``pip install atheris``), the same target is run on random
mutations of the seeds with Python's ``random`` for the given time
(``-max_total_time``, default 60 s), and the number of executions is printed.
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import os
import random
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_SEED = 64 * 1024
MAX_SET = 16 * 1024        # inputs also read as a set of two captures (twice the work)
MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
          b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")

warnings.simplefilter("ignore")      # caproto warns about deprecated ReadResponse
# caproto logs a traceback for every invalid alarm status it formats (the CLI
# silences it the same way): keep the fuzzer's output for real crashes
logging.getLogger("caproto").setLevel(logging.CRITICAL)
import numpy  # noqa: E402
numpy.set_printoptions(linewidth=sys.maxsize)   # as the CLI does: reprs on one line

try:
    import atheris
except ImportError:
    atheris = None

if atheris is not None:
    # coverage feedback for libFuzzer: instrument pcapca's own modules
    with atheris.instrument_imports(include=["pcapca"]):
        import pcapca.pipeline  # noqa: F401
        import pcapca.capture.pcapng_read  # noqa: F401
        import pcapca.capture.pcapng_write  # noqa: F401
        import pcapca.stats.collector  # noqa: F401
        import pcapca.stats.render  # noqa: F401

import pcapca.output.arrays  # noqa: E402
import pcapca.output.payload  # noqa: E402
import pcapca.output.values  # noqa: E402
import pcapca.fast.skim  # noqa: E402
from pcapca.capture.reader import CaptureFormatError  # noqa: E402
from pcapca.ca.circuits import Decoder  # noqa: E402
import pcapca.ca.shown  # noqa: E402
import pcapca.ca.tcp_circuits  # noqa: E402
import pcapca.capture.bulk  # noqa: E402
import pcapca.capture.pcapng_blocks  # noqa: E402
import pcapca.ca.channels  # noqa: E402
import pcapca.stats.bounds  # noqa: E402
from pcapca.filters import Filter  # noqa: E402
from pcapca.items import CircuitClosed, Passthrough, Problem  # noqa: E402
from pcapca.output.comments import default_comment  # noqa: E402
from pcapca.escape import printable_json  # noqa: E402
from pcapca.output.jsonout import command_fields, record_fields, record_json  # noqa: E402
from pcapca.output.reprs import record_repr  # noqa: E402
from pcapca.output.template import Template  # noqa: E402
from pcapca.pipeline import decode  # noqa: E402
from pcapca.ca.records import Decoded
from pcapca.stats.collector import collect  # noqa: E402
from pcapca.stats.render import render_text  # noqa: E402

_KINDS = (Decoded, Passthrough, Problem, CircuitClosed)
# The filtered print's shortcut (pcapca.fast.skim) must not change what a filter
# keeps: each input is also decoded with and without it.
pcapca.capture.bulk.MIN_RECORDS = 1       # (fuzz inputs are short)
# the bounds of docs/troubleshooting.md#bounds, lowered so that short inputs
# reach them: bytes buffered over all circuits (with _filtered's --max-message),
# interfaces per pcapng section (twoif.pcapng has 2), problem lines shown,
# stats' rows per table (folded past it) and channels per circuit
pcapca.ca.tcp_circuits.MAX_BUFFERED = 1024
pcapca.capture.pcapng_blocks.MAX_INTERFACES = 2
pcapca.ca.shown.SHOWN_PER_KIND = 3
pcapca.stats.bounds.MAX_ROWS = 4
pcapca.ca.channels.MAX_CHANNELS = 4
FUZZ_MAX_MESSAGE = 2048
_FILTER = Filter.build(pv=["FIX:dbl", "CORPUS:dbl"])
# every --format token, and fields of caproto's and dpkt's objects
_EVERY_TOKEN = Template("{timestamp} {ethernet} {ip} {transport} {src} {dst} {frame} {sport} "
                        "{dport} {proto} {role} {name} {pv} {latency} {request_frame} {ts} "
                        "{time} {ip.ttl} {transport.sport} {command.data} {command.metadata} "
                        "{command.sid} {file} {file_frame} {time_relative}")
# pcapca's own texts, not the first ones it compares with caproto's at run time
# (a difference there would turn its fast path off, and hide it from the check below)
pcapca.output.arrays._VERIFY_FIRST = 0
pcapca.output.values._VERIFY_FIRST = 0
pcapca.output.payload._VERIFY_FIRST = 0


# Bugs already reported (with an xfail test in tests/test_robustness.py) that
# FUZZ_SKIP_KNOWN=1 lets the fuzzer step over, to look for other ones:
# (exception type, file, function) of the innermost frame.
KNOWN: set = set()
# fixed: ("KeyError", "decoder.py", "_drop"): TCP packet whose source == destination
SKIP_KNOWN = os.environ.get("FUZZ_SKIP_KNOWN") == "1"
known_hits = {}


def target(data: bytes) -> None:
    if not SKIP_KNOWN:
        return _target(data)
    try:
        _target(data)
    except Exception as exc:
        import traceback
        last = traceback.extract_tb(exc.__traceback__)[-1]
        sig = (type(exc).__name__, os.path.basename(last.filename), last.name)
        if sig not in KNOWN:
            raise
        if sig not in known_hits:
            print(f"fuzz_readers: known bug hit (skipped): {sig}", file=sys.stderr)
        known_hits[sig] = known_hits.get(sig, 0) + 1


def _target(data: bytes) -> None:
    try:
        items = decode(data)
    except CaptureFormatError:
        return
    fatal = 0
    for item in items:
        if not isinstance(item, _KINDS):
            raise AssertionError(f"unexpected item {item!r}")
        if item.__class__ is Problem:
            str(item)
            fatal += item.fatal
        elif item.__class__ is Decoded:
            for record in item.records:
                # what print and --json show (without building the caproto object when
                # they can) must be caproto's own, from the object built from the bytes
                text, fields = record_repr(record), record_fields(record)
                if text != repr(record.command):
                    raise AssertionError(f"{text!r} != caproto's {record.command!r}")
                if json.dumps(fields) != json.dumps(command_fields(record.command)):
                    raise AssertionError(f"{record.cls.__name__} fields differ from caproto's")
                line = _EVERY_TOKEN(record)
                if not line.isprintable():      # one message, one line, no terminal control
                    raise AssertionError(f"--format line not printable: {line!r}")
                for out in (record_json(record), default_comment(record)):
                    if not out.isprintable():
                        raise AssertionError(f"output not printable: {out!r}")
    if fatal > 1:
        raise AssertionError("more than one fatal problem")
    if data[:4] in MAGICS and _filtered(data, _FILTER.drops) != _filtered(data, None):
        raise AssertionError("the --pv shortcut (pcapca.fast.skim) changed the output")
    if len(data) <= MAX_SET:
        _as_set(data)
    # pcapca stats: its report of the same bytes, as text and JSON
    report = collect([io.BytesIO(data)])
    for text in (render_text(report),
                 printable_json(json.dumps(report, ensure_ascii=False, indent=1))):
        if not all(line.isprintable() for line in text.split("\n")):
            raise AssertionError(f"stats report not printable: {text!r}")


def _as_set(data: bytes) -> None:
    """The bytes read twice as a set of two captures (pcapca.capture.sets):
    every item of an expected kind, every problem named by its file with a
    frame of that file, every record's frame in the numbering across both."""
    from pcapca.capture.sets import FileFrames
    from pcapca.pipeline import decode_files
    from pcapca.capture.progress import Progress
    from pcapca.capture.sources import ByteSource
    files = FileFrames(["one", "two"])
    where = Template("{file}:{file_frame}", files)
    frames = []
    for item in decode_files(files, opener=lambda p: Progress(ByteSource(io.BytesIO(data), p),
                                                             None)):
        if not isinstance(item, _KINDS):
            raise AssertionError(f"unexpected item {item!r}")
        if item.__class__ is Problem:
            if item.source not in ("one", "two") or not str(item).startswith(item.source):
                raise AssertionError(f"problem not labelled with its file: {item!r}")
        elif item.__class__ is Decoded:
            frames.extend(r.frame for r in item.records)
            for record in item.records:
                name, frame = files.locate(record.frame)
                if frame < 1 or where(record) != f"{name}:{frame}":
                    raise AssertionError(f"frame {record.frame} located at {name} {frame}")
    if frames and (min(frames) < 1 or len(files.starts) != 2):
        raise AssertionError(f"frames {min(frames)}.., starts {files.starts}")


def _filtered(data: bytes, drops):
    """What a filtered print shows (records, problems, summary), with the
    shortcut (``drops``) or without it."""
    decoder = Decoder(max_message=FUZZ_MAX_MESSAGE)
    out = []
    for item in decode(data, decoder=decoder, drops=drops):
        if item.__class__ is Problem:
            out.append(str(item))
        elif item.__class__ is Decoded:
            out.extend((r.frame, r.pv, r.request_frame, r.latency, r.cls, r.fields)
                       for r in item.records if _FILTER.matches(r))
    if decoder.buffered > decoder.max_buffered:
        raise AssertionError(f"{decoder.buffered} bytes buffered, over the bound")
    return out, decoder.counts.summary(), decoder.counts.unshown_line()


def _seeds(dirs):
    for d in dirs:
        for path in sorted(Path(d).iterdir()):
            if path.is_file() and path.stat().st_size <= MAX_SEED:
                with open(path, "rb") as f:
                    if f.read(4) in MAGICS:
                        yield path


def _seed_inputs(seed_dirs):
    """(name, bytes) of every seed, and of a gzip-compressed copy of the
    smallest ones (so that mutations reach the gzip reader's damage paths)."""
    seeds = [(p.name, p.read_bytes()) for p in _seeds(seed_dirs)]
    small = sorted(seeds, key=lambda s: len(s[1]))[:4]
    return (seeds + [(f"{name}.gz", gzip.compress(raw, mtime=0)) for name, raw in small]
            + _hostile_seeds() + [
                ("hostile-zeros.pcap", _PCAP_HEAD + bytes(4096)),   # an empty record every 16 bytes
                ("hostile-idbs.pcapng", _many_idbs(seeds))])


def _hostile_seeds():
    """basic.pcap with shapes that mutations rarely make: a read reply whose
    data_count is far over its payload (extended and plain headers), and a
    long DBR_STRING array (tests/test_robustness.py's)."""
    from tests.builders import BASIC, build, data, lying_count_recs, lying_reply
    strings = b"".join(b"s%d".ljust(40, b"\0") % i for i in range(1001))
    replies = {"count-2e32": lying_reply(2**32 - 1), "count-65535": lying_reply(65535, 0, False),
               "count-time-double": lying_reply(2**31, 20, True, bytes(24)),
               "strings-1001": lying_reply(1001, 0, False, strings)}
    return [(f"basic-{name}.pcap", build(data(BASIC)[:24], lying_count_recs(reply)))
            for name, reply in replies.items()]


_PCAP_HEAD = b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00\x01\x00\x00\x00"


def _many_idbs(seeds) -> bytes:
    """The smallest pcapng seed with its first interface block repeated 4 times."""
    import struct
    pcapngs = sorted((raw for _, raw in seeds if raw[:4] == MAGICS[-1]), key=len)
    if not pcapngs:
        return b""
    raw = pcapngs[0]
    at = struct.unpack_from("<I", raw, 4)[0]                 # (after the section header)
    if raw[at:at + 4] != b"\x01\x00\x00\x00":
        return raw
    idb = raw[at:at + struct.unpack_from("<I", raw, at + 4)[0]]
    return raw[:at] + idb * 4 + raw[at + len(idb):]


def _corpus(seed_dirs) -> Path:
    corpus = Path(os.environ.get("FUZZ_CORPUS", ROOT / "out" / "fuzz-corpus"))
    corpus.mkdir(parents=True, exist_ok=True)
    for name, raw in _seed_inputs(seed_dirs):
        dest = corpus / f"seed-{name}"
        if not dest.exists():
            dest.write_bytes(raw)
    return corpus


def _fallback(args, seed_dirs) -> None:
    """Random mutations of the seeds, without atheris."""
    seconds = 60.0
    runs = None
    for a in args:
        if a.startswith("-max_total_time="):
            seconds = float(a.split("=", 1)[1])
        elif a.startswith("-runs="):
            runs = int(a.split("=", 1)[1])
    seeds = [raw for _, raw in _seed_inputs(seed_dirs)] or [b""]
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "0")))
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and (runs is None or n < runs):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            if op == 0 and data:
                del data[rng.randrange(len(data) + 1):]
            elif op == 1 and data:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 2 and data:
                a = rng.randrange(len(data))
                del data[a:a + rng.randint(1, 256)]
            elif op == 3 and data and rng.random() < 0.5:
                # a terminal control on a printable byte (often a name's)
                a = rng.randrange(len(data))
                while a < len(data) - 1 and not 0x21 <= data[a] < 0x7f:
                    a += 1
                data[a] = rng.choice(b"\x1b\x07\x7f\x9b\n")
            else:
                a = rng.randrange(len(data) + 1)
                data[a:a] = os.urandom(rng.randint(1, 64))
        try:
            target(bytes(data))
        except Exception:
            crash = ROOT / "out" / "fuzz-crashes"
            crash.mkdir(parents=True, exist_ok=True)
            (crash / f"crash-{n}").write_bytes(data)
            raise
        n += 1
    print(f"fuzz_readers (fallback, no atheris): {n} executions in {seconds:.0f} s, no crash")


def main() -> None:
    args = sys.argv[1:]
    seed_dirs = [a for a in args if not a.startswith("-") and os.path.isdir(a)]
    other = [a for a in args if a not in seed_dirs]
    if atheris is None:
        _fallback(other, seed_dirs)
        return
    corpus = _corpus(seed_dirs)
    crashes = ROOT / "out" / "fuzz-crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    if not any(a.startswith("-artifact_prefix=") for a in other):
        other.append(f"-artifact_prefix={crashes}/")
    if not any(a.startswith("-max_len=") for a in other):
        other.append(f"-max_len={MAX_SEED}")
    argv = [sys.argv[0], *other, str(corpus)]
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
