"""``pcapca annotate IN OUT``: every input packet, unchanged, in a pcapng file
where each packet that completes CA messages carries one comment per message.

The comments are what Wireshark shows as ``frame.comment``; by default the PV
name (when known) and caproto's repr of the message, so that
``frame.comment contains "SOFT:ai"`` finds every packet about that PV.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

from .capture_set import Files
from .formatting import Template, record_repr
from .events import Passthrough, Problem
from .pcapng_io import PcapngWriter
from .pipeline import decode
from .progress import open_with_progress
from .records import Decoded


class _StrictStop(Exception):
    pass


def default_comment(record) -> str:
    """``{pv} {command}``, without the PV (and its space) when it is unknown."""
    text = record_repr(record)
    return f"{record.pv} {text}" if record.pv is not None else text


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def annotate(args, *, decoder, report: Callable[[Problem], None]) -> int:
    """Run the annotate command; returns the exit status."""
    src, dst = args.input, args.output
    if _same_file(src, dst):
        from .cli import UsageError as CliUsageError
        raise CliUsageError(f"output {dst!r} is the input file: refusing to overwrite it")
    comment = (Template(args.comment, Files([src])) if getattr(args, "comment", None)
               else default_comment)
    flt = getattr(args, "filter", None)
    keep_all = getattr(args, "keep_all", False)

    progress = open_with_progress(src, enabled=getattr(args, "progress", False) and not args.quiet)
    strict = getattr(args, "strict", False)
    items = decode(progress.src, decoder=decoder, strict=strict)   # errors before any output
    tick = progress.update
    if dst == "-":
        out = sys.stdout.buffer
        tmp_path = None
    else:
        directory = os.path.dirname(os.path.abspath(dst))
        try:
            fd, tmp_path = tempfile.mkstemp(prefix=".pcapca-", suffix=".pcapng.part",
                                            dir=directory)
        except OSError as exc:   # (name OUT, not the temporary file next to it)
            raise OSError(exc.errno, f"cannot write {dst!r}: {exc.strerror}") from None
        out = os.fdopen(fd, "wb", buffering=1 << 20)
    writer = PcapngWriter(out, flush_each=(dst == "-"))
    damaged = False
    late = 0
    try:
        for item in items:
            cls = item.__class__
            if cls is Decoded:
                tick()
                if item.late:
                    late += len(item.records)
                    continue
                records = item.records
                if flt is not None:
                    matching = [r for r in records if flt.matches(r)]
                    if not matching and not keep_all:
                        continue
                    records = matching
                comments = [comment(r) for r in records]
                if item.notes and flt is None:
                    comments.extend(item.notes)
                writer.write_packet(item.packet, comments)
            elif cls is Passthrough:
                writer.write_passthrough(item)
            elif cls is Problem:
                if item.kind == "capture":
                    damaged = True
                report(item)
                if strict and item.stops_strict:
                    # --strict: the first problem fails the run; no output file
                    raise _StrictStop()
        progress.close()
        writer.close()
        if tmp_path is not None:
            out.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)    # as an ordinary new file
            os.replace(tmp_path, dst)
            tmp_path = None
    except _StrictStop:
        damaged = True
    finally:
        if tmp_path is not None:
            try:
                out.close()
            except OSError:
                pass
            os.unlink(tmp_path)
    if late:
        report(Problem(f"{late} messages were completed only at the end of the capture "
                       f"(data waiting behind a hole) and could not be attached to their "
                       f"packets, which were already written", kind="decode"))
    if not args.quiet:
        print(f"pcapca: {decoder.stats.summary()}", file=sys.stderr)
    return 1 if damaged else 0
