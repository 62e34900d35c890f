"""``--format`` strings: the tokens, the fields they may reach, compiled templates."""
from __future__ import annotations

import string
import types
from typing import Dict, List, Optional, Tuple

import dpkt

from ..ca._caproto import Commands
from ..errors import FormatError
from ..escape import printable
from ..items import FirstPacket
from .jsonout import ts_string
from .reprs import record_repr

DEFAULT_FORMAT = "{timestamp} {src}:{transport.sport}->{dst}:{transport.dport} {command}"

# Tokens: caproto-shark's, then pcapca's own.
SHARK_TOKENS = ("timestamp", "ethernet", "ip", "transport", "command", "src", "dst")
TOKENS = SHARK_TOKENS + ("frame", "sport", "dport", "proto", "role", "name", "pv",
                         "latency", "request_frame", "ts", "time", "time_relative", "file",
                         "file_frame")


def _opt(value):
    return "" if value is None else value


def _text(value):
    """{pv}: "" when unknown, else the name made printable."""
    return "" if value is None else value if value.isprintable() else printable(value)


def _latency(value):
    return "" if value is None else f"{value:.6f}"


# token -> Python expression on the record ``r`` (the only code the compiled
# templates contain besides constants: no text from the user is evaluated)
_EXPRESSIONS: Dict[str, str] = {
    "timestamp": "r.packet.timestamp",
    "ethernet": "r.ethernet",
    "ip": "r.ip",
    "transport": "r.transport",
    "command": "r.command",        # bare {command} is compiled to caproto's repr
    "src": "r.segment.src",
    "dst": "r.segment.dst",
    "frame": "r.packet.frame",
    "sport": "r.segment.sport",
    "dport": "r.segment.dport",
    "proto": "r.proto",
    "role": "r.role",
    "name": "r.cls.__name__",
    "pv": "_text(r.pv)",
    "latency": "_latency(r.latency)",
    "request_frame": "_opt(r.request_frame)",
    "ts": "r.packet.ts",
    "time": "_ts_string(r.packet.ts)",
    "time_relative": "_ts_string(r.packet.ts - _start(r.packet.ts))",
    "file": "_text(_files.name(r.packet.frame))",
    "file_frame": "_files.local(r.packet.frame)",
}
# caproto-shark's {transport.sport}/{transport.dport} without building dpkt objects
_SHORTCUTS = {("transport", "sport"): "r.segment.sport", ("transport", "dport"): "r.segment.dport"}


def _chain(value, chain):
    """Follow .attr / [key] steps; a field this message does not have (e.g.
    {command.sid} of a search request) formats as empty, and so does code
    (a method, a class, a module: not a field, and the way to internals)."""
    try:
        for kind, key in chain:
            value = getattr(value, key) if kind == "." else value[key]
            if callable(value) or isinstance(value, _CODE):
                return ""
    except (AttributeError, KeyError, IndexError, TypeError):
        return ""
    return printable(value) if value.__class__ is str else value     # (text from the wire)


# objects that lead to code and globals through names without underscores
# (gi_frame.f_globals, tb_frame...), besides the callables
_CODE = (types.ModuleType, types.FrameType, types.CodeType, types.GeneratorType,
         types.CoroutineType, types.AsyncGeneratorType, types.TracebackType)


def _command_attributes() -> set:
    """The fields of caproto's messages: their public data attributes and
    properties, not their methods."""
    names, methods = set(), set()
    for table in Commands.values():
        for cls in table.values():
            for n in dir(cls):
                if not n.startswith("_"):
                    (methods if callable(getattr(cls, n)) else names).add(n)
    names.update(("header", "buffers", "sender_address"))
    return names - methods


def _dpkt_attributes(kind: str) -> Optional[set]:
    classes = {"transport": (dpkt.tcp.TCP, dpkt.udp.UDP), "ip": (dpkt.ip.IP,),
               "ethernet": (dpkt.ethernet.Ethernet, dpkt.sll.SLL, dpkt.sll2.SLL2,
                            dpkt.loopback.Loopback)}.get(kind)
    if classes is None:
        return None
    names = set()
    for cls in classes:
        names.update(n for n in dir(cls) if not callable(getattr(cls, n)))
        names.update(getattr(cls, "__hdr_fields__", ()))
        for f in getattr(cls, "__hdr__", ()):
            names.add(f[0])
        for subfields in getattr(cls, "__bit_fields__", {}).values():
            names.update(name for name, _bits in subfields)
    return {n for n in names if not n.startswith("_")}


def _split_field(field: str) -> Tuple[str, List[Tuple[str, object]]]:
    """'transport.sport' -> ('transport', [('.', 'sport')])"""
    chain: List[Tuple[str, object]] = []
    i = 0
    while i < len(field) and field[i] not in ".[":
        i += 1
    root = field[:i]
    while i < len(field):
        if field[i] == ".":
            j = i + 1
            while j < len(field) and field[j] not in ".[":
                j += 1
            chain.append((".", field[i + 1:j]))
            i = j
        else:
            j = field.index("]", i)
            key = field[i + 1:j]
            chain.append(("[", int(key) if key.isdigit() else key))
            i = j + 1
    return root, chain


def _check_chain(fmt: str, field: str, root: str, chain) -> None:
    """Fields only, at any depth: no name or key starting with ``_`` (Python's
    internals: ``__class__``, ``__globals__``), no index of the object itself."""
    for kind, key in chain:
        if key == "" or (key.__class__ is str and key.startswith("_")):
            raise FormatError(f"format string {fmt!r}: '{{{field}}}': {key!r} is not a field "
                              f"(names starting with _ are Python's internals)" if key else
                              f"format string {fmt!r}: bad field '{{{field}}}'")
    if chain and chain[0][0] == "[" and root in ("command", "ethernet", "ip", "transport"):
        raise FormatError(f"format string {fmt!r}: '{{{field}}}': {{{root}}} has no index; "
                          f"index a field, e.g. {{command.data[0]}}")


# the largest width or precision of a format spec ({frame:>1000}): a line's
# size is then bounded by the format string's
MAX_FIELD_WIDTH = 1000


class _NoFiles:
    """{file}, {file_frame} of a Template given no ``Files``: no name."""
    @staticmethod
    def name(frame: int) -> str:
        return ""

    @staticmethod
    def local(frame: int) -> int:
        return frame


class Template:
    """A compiled ``--format`` string. ``Template(fmt)`` raises FormatError
    for a bad one (unknown token, unknown attribute, syntax). ``files``: a
    ``pcapca.capture.sets.FileFrames``, for ``{file}`` and ``{file_frame}``;
    ``start``: the ``filters.FirstPacket`` that ``{time_relative}`` counts
    from (see ``anchor``), shared with the templates made from this one."""

    def __init__(self, fmt: str, files=None, start=None):
        self.text = fmt
        self.files = files if files is not None else _NoFiles
        self._start = start if start is not None else FirstPacket()
        self.parts: List = []
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            raise FormatError(f"bad format string {fmt!r}: {exc}") from None
        cmd_attrs = None
        for literal, field, spec, conv in parsed:
            if literal:
                self.parts.append(literal)
            if field is None:
                continue
            if field == "" or field.isdigit():
                raise FormatError(f"format string {fmt!r}: positional field "
                                  f"'{{{field}}}' is not supported; use a token name, "
                                  f"one of: {', '.join('{' + t + '}' for t in TOKENS)}")
            try:
                root, chain = _split_field(field)
            except (ValueError, StopIteration):
                raise FormatError(f"format string {fmt!r}: bad field '{{{field}}}'") from None
            if root not in _EXPRESSIONS:
                raise FormatError(f"format string {fmt!r}: unknown token '{{{root}}}'; "
                                  f"tokens are {', '.join('{' + t + '}' for t in TOKENS)}")
            _check_chain(fmt, field, root, chain)
            if chain and chain[0][0] == ".":
                attr = chain[0][1]
                if root == "command":
                    cmd_attrs = cmd_attrs or _command_attributes()
                    known = cmd_attrs
                else:
                    known = _dpkt_attributes(root)
                if known is not None and attr not in known:
                    raise FormatError(f"format string {fmt!r}: '{{{field}}}': "
                                      f"no CA message field or attribute named {attr!r}"
                                      if root == "command" else
                                      f"format string {fmt!r}: '{{{field}}}': "
                                      f"{root} has no attribute {attr!r}")
                if known is None:
                    raise FormatError(f"format string {fmt!r}: '{{{field}}}': "
                                      f"{{{root}}} has no attributes")
            if conv not in (None, "r", "s", "a"):
                raise FormatError(f"format string {fmt!r}: bad conversion !{conv}")
            if spec and "{" in spec:
                raise FormatError(f"format string {fmt!r}: nested fields are not supported")
            if spec and max(map(int, "".join(c if c.isdecimal() else " " for c in spec).split()),
                            default=0) > MAX_FIELD_WIDTH:
                raise FormatError(f"format string {fmt!r}: '{{{field}:{spec}}}': a width or "
                                  f"precision over {MAX_FIELD_WIDTH} is not supported")
            self.parts.append((root, tuple(chain), conv, spec))
        self._render = self._compile()

    @property
    def relative(self) -> bool:
        """Does it show ``{time_relative}`` (see ``anchor``)?"""
        return any(part[0] == "time_relative" for part in self.parts if part.__class__ is tuple)

    def anchor(self, ts: int) -> None:
        """The time stamp (ns) of the capture's first packet, from which
        ``{time_relative}`` counts (``FirstPacket``): without one, it counts
        from the first record formatted."""
        self._start.anchor(ts)

    def _compile(self):
        consts = []
        pieces = []
        for part in self.parts:
            if part.__class__ is str:
                pieces.append(part.replace("{", "{{").replace("}", "}}"))
                continue
            root, chain, conv, spec = part
            if not chain and root == "command":
                expr = "_repr(r)"      # {command}, {command!r}, {command!s}
                conv = None if conv in ("r", "s") else conv
            elif len(chain) == 1 and (root, chain[0][1]) in _SHORTCUTS:
                expr = _SHORTCUTS[(root, chain[0][1])]
            elif chain:
                consts.append(chain)
                expr = f"_chain({_EXPRESSIONS[root]}, _c[{len(consts) - 1}])"
            else:
                expr = _EXPRESSIONS[root]
            if spec:
                consts.append(spec)
                spec_text = "{_c[%d]}" % (len(consts) - 1)
            else:
                spec_text = ""
            pieces.append("{" + expr + ("!" + conv if conv else "")
                          + (":" + spec_text if spec_text else "") + "}")
        source = "lambda r: f" + repr("".join(pieces))
        env = {"_c": tuple(consts), "_repr": record_repr, "_opt": _opt, "_text": _text, "_latency": _latency, "_ts_string": ts_string, "_chain": _chain, "_files": self.files,
               "_start": self._start.of}
        return eval(source, env)  # noqa: S307 - built only from the fixed expressions above

    def __call__(self, record) -> str:
        try:
            return self._render(record)
        except Exception:
            # a format spec that does not fit this value (e.g. {pv:>5d}), or a
            # field that caproto cannot read from a damaged message: part by part
            return self._render_loose(record)

    def _render_loose(self, record) -> str:
        out = []
        for part in self.parts:
            if part.__class__ is str:
                out.append(part)
                continue
            root, chain, conv, spec = part
            single = Template("{" + root + "".join(
                f".{k}" if kind == "." else f"[{k}]" for kind, k in chain)
                + (f"!{conv}" if conv else "") + "}", self.files, self._start)
            try:
                value = single._render(record)
            except Exception as exc:
                if not chain:
                    raise                   # pcapca's own token: a bug, reported as one
                # caproto's (or dpkt's) property or its text raised, as for a
                # damaged payload: the field says so, as {command} does in its repr
                out.append(f"(error: {printable(str(exc))})")
                continue
            try:
                out.append(format(value, spec))
            except ValueError:
                out.append(value)
        return "".join(out)
