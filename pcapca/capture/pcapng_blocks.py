"""pcapng blocks: type codes, options (parsed, packed), interfaces, packet blocks built.

python-pcapng 2.1.1 is used only here, and only where it works (each item has a test):

* ``FileScanner`` calls ``tell()`` on its input (pipes fail): it never sees the
  input, only single blocks (``decode_idb``; reading: ``pcapng_input.CountingReader``).
* A repeated non-repeatable option raises on read (``TypeError``) and on write;
  unknown option codes raise ``KeyError``: ``decode_idb`` gives it only the first,
  well-formed ``if_name`` / ``if_tsoffset``.
* ``UnknownBlock`` writes nothing: unknown blocks are copied byte for byte.
* Zero-length packets cannot be written (``ValueError``): ``pack_epb`` packs EPBs.
* ``.timestamp`` is a float and a bogus ``if_tsresol`` gives absurd floats or
  raises: ``tsresol_ticks`` gives integer ticks per second (10**-n for n < 20,
  2**-n for n < 64, as Wireshark; else 10**6 and a Problem).
"""
from __future__ import annotations

import io
import struct
import warnings
from typing import Iterable, Optional

from pcapng import blocks as _blocks

from ..items import Interface

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002            # obsolete Packet Block
SPB = 0x00000003
NRB = 0x00000004
ISB = 0x00000005
EPB = 0x00000006
DSB = 0x0000000A
CB_COPY = 0x00000BAD
CB_NOCOPY = 0x40000BAD
# Types accepted as "plausible" when resynchronising after damage.
KNOWN_TYPES = frozenset(range(1, 0x0B)) | {SHB, CB_COPY, CB_NOCOPY}

MAX_BLOCK_LEN = 256 * 1024 * 1024   # larger total lengths are reported as corrupt
RESYNC_MAX_LEN = 16 * 1024 * 1024  # longest block accepted when resynchronising
MAX_OPTION_LEN = 65535
# interfaces kept per section (the obsolete Packet Block's 16-bit ids); the
# packets of further ones are copied, not decoded
MAX_INTERFACES = 65536

SHB_MAGIC = struct.pack("<I", SHB)      # palindrome: same in both byte orders
BOM_LE = b"\x4d\x3c\x2b\x1a"
BOM_BE = b"\x1a\x2b\x3c\x4d"

OPT_COMMENT = 1
OPT_CUSTOM_STR_COPY = 2988
OPT_CUSTOM_STR = 19372
MARKER_PEN = 32473
MARKER_PREFIX = b"pcapca:comments="
_DEFAULT_TSRESOL = 10**6
NS = 1_000_000_000


def parse_options(buf: bytes, start: int, end: int, endian: str):
    """Parse the options in ``buf[start:end]``.

    Returns ``(options, error)``: a list of ``(code, value)`` pairs in file
    order (stopping at opt_endofopt) and an error message or None.
    """
    opts = []
    unpack = struct.Struct(endian + "HH").unpack_from
    i = start
    while i + 4 <= end:
        code, length = unpack(buf, i)
        if code == 0:
            break
        vend = i + 4 + length
        if vend > end:
            return opts, f"option {code} ({length} bytes) runs past the end of its block"
        opts.append((code, bytes(buf[i + 4:vend])))
        i = vend + (-length % 4)
    return opts, None


def tsresol_ticks(value: Optional[bytes]) -> tuple[int, Optional[str]]:
    """Ticks per second for an if_tsresol option value (None: absent).

    Returns ``(ticks_per_second, problem)``; an unusable value gives the
    default 10**6 and a message.
    """
    if value is None:
        return _DEFAULT_TSRESOL, None
    if len(value) != 1:
        return _DEFAULT_TSRESOL, (f"if_tsresol has {len(value)} bytes instead of 1; "
                                  "using microseconds")
    b = value[0]
    exp = b & 0x7F
    if b & 0x80:
        if exp < 64:
            return 2**exp, None
        what = f"2**-{exp}"
    else:
        if exp < 20:
            return 10**exp, None
        what = f"10**-{exp}"
    return _DEFAULT_TSRESOL, (f"if_tsresol 0x{b:02x} ({what} s) is unusable; "
                              "using microseconds")


def decode_idb(raw: bytes, endian: str) -> tuple[Interface, int, list[str]]:
    """Decode an IDB: (Interface, tsoffset in ns, problem messages)."""
    problems = []
    if len(raw) < 20:
        problems.append(f"interface description block is too short ({len(raw)} bytes)")
        return Interface(linktype=0, raw=raw), 0, problems
    opts, err = parse_options(raw, 16, len(raw) - 4, endian)
    if err:
        problems.append(f"interface description block: {err}")
    # Give python-pcapng only options it can cope with: first occurrence,
    # right size, valid UTF-8 (see the module's list).
    first: dict[int, bytes] = {}
    for code, value in opts:
        first.setdefault(code, value)
    clean = []
    name = first.get(2)
    if name is not None:
        try:
            name.decode("utf-8")
            clean.append((2, name))
        except UnicodeDecodeError:
            problems.append("interface name is not valid UTF-8")
    tsoff = first.get(14)
    if tsoff is not None:
        if len(tsoff) == 8:
            clean.append((14, tsoff))
        else:
            problems.append(f"if_tsoffset has {len(tsoff)} bytes instead of 8; ignored")
    body = bytearray(raw[8:16])
    for code, value in clean:
        body += struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    body += b"\0\0\0\0"
    blk = _blocks.InterfaceDescription(section=None, endianness=endian, raw=bytes(body))
    tps, msg = tsresol_ticks(first.get(9))
    if msg:
        problems.append(msg)
    return (Interface(linktype=blk.link_type, snaplen=blk.snaplen, tsresol=tps,
                      name=blk.options.get("if_name"), raw=raw),
            blk.options.get("if_tsoffset", 0) * NS, problems)


def bad_length(blen: int, limit: int = MAX_BLOCK_LEN) -> Optional[str]:
    if blen < 12:
        return "smaller than 12"
    if blen % 4:
        return "not a multiple of 4"
    if blen > limit:
        return f"larger than the {limit // (1024 * 1024)} MiB limit"
    return None



ISB_IFRECV, ISB_IFDROP, ISB_OSDROP = 4, 5, 7


def isb_loss(raw: bytes, e: str, ifaces, section: int, reported: dict):
    """(message, (section, interface id, packets dropped)) for an Interface
    Statistics Block whose drop counters (isb_ifdrop + isb_osdrop, counted
    from the start of the capture) went up since the last one of its
    interface, else None."""
    if len(raw) < 24:
        return None
    iid = struct.unpack_from(e + "I", raw, 8)[0]
    opts, _ = parse_options(raw, 20, len(raw) - 4, e)
    counts = {code: struct.unpack(e + "Q", value)[0] for code, value in opts
              if code in (ISB_IFRECV, ISB_IFDROP, ISB_OSDROP) and len(value) == 8}
    drops = [counts[c] for c in (ISB_IFDROP, ISB_OSDROP) if c in counts]
    dropped = sum(drops)
    if not drops or dropped <= reported.get((section, iid), 0):
        return None
    reported[(section, iid)] = dropped
    name = ifaces[iid][0].name if iid < len(ifaces) and ifaces[iid][0].name else None
    which = f"interface {iid}" + (f" ({name})" if name else "")
    received = counts.get(ISB_IFRECV)
    of = f" of {received} received" if received is not None else ""
    return (f"{which}: the capturing program counted {dropped} packets dropped{of} "
            f"(pcapng interface statistics); CA messages may be missing from this capture",
            (section, iid, dropped))


def pack_options(opts: Iterable[tuple[int, bytes]], endian: str) -> bytes:
    if not opts:
        return b""
    parts = []
    hh = HH[endian]
    for code, value in opts:
        parts.append(hh(code, len(value)))
        parts.append(value)
        parts.append(b"\0" * (-len(value) % 4))
    if parts:
        parts.append(b"\0\0\0\0")
    return b"".join(parts)


def pack_epb(endian: str, interface_id: int, ticks: int, data: bytes, orig_len: int,
             options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """An Enhanced Packet Block, packed with struct (works for empty packets)."""
    return pack_epb_raw(endian, interface_id, ticks, data, orig_len, pack_options(options, endian))


def pack_epb_raw(endian: str, interface_id: int, ticks: int, data: bytes, orig_len: int,
         opt: bytes) -> bytes:
    """``pack_epb`` with its options already packed (``opt``)."""
    ticks &= 0xFFFFFFFFFFFFFFFF
    pad = PADDING[-len(data) % 4]
    total = 32 + len(data) + len(pad) + len(opt)
    head, tail = EPB_STRUCTS[endian]
    return b"".join((head(EPB, total, interface_id, ticks >> 32, ticks & 0xFFFFFFFF,
                          len(data), orig_len & 0xFFFFFFFF),
                     data, pad, opt, tail(total)))


PADDING = (b"", b"\0", b"\0\0", b"\0\0\0")
HH = {e: struct.Struct(e + "HH").pack for e in "<>"}
EPB_STRUCTS = {e: (struct.Struct(e + "7I").pack, struct.Struct(e + "I").pack) for e in "<>"}
EPB_TYPE = {e: struct.pack(e + "I", EPB) for e in "<>"}
TYPE_LEN = {e: struct.Struct(e + "II").pack for e in "<>"}


def _write_block(blk) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # if_tsresol has no field type in python-pcapng: DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        blk._write(buf)
    return buf.getvalue()


def build_shb(endian: str = "<", userappl: Optional[str] = None) -> bytes:
    """A Section Header Block built by python-pcapng."""
    opts = {"shb_userappl": userappl} if userappl else {}
    return _write_block(_blocks.SectionHeader(endianness=endian, options=opts))


def build_idb(endian: str, linktype: int, snaplen: int, name: Optional[str] = None,
              tsresol: int = 9) -> bytes:
    """An Interface Description Block built by python-pcapng (ns timestamps)."""
    opts = {"if_tsresol": bytes([tsresol])}
    if name:
        opts["if_name"] = name
    shb = _blocks.SectionHeader(endianness=endian)
    idb = shb.new_member(_blocks.InterfaceDescription, link_type=linktype & 0xFFFF,
                         snaplen=snaplen & 0xFFFFFFFF, options=opts)
    return _write_block(idb)

