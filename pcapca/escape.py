"""Text from the wire made safe for terminals and JSON: control characters escaped."""
from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with each character a terminal would act on or not show
    (newline, carriage return, escape, other controls and non-printable
    characters) written as its Python escape (``\\n``, ``\\x1b``): names
    come from the wire, and one message must stay one line of text.
    Non-printable is ``str.isprintable``'s: C0, DEL, C1 (``\\x9b``), bidi
    and other format characters (``\\u202e``), separators but the space,
    unassigned code points; the same escapes as Python's (and so caproto's)
    repr of a name. ``printable_json`` escapes the same characters in JSON."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_json(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the characters ``printable``
    escapes and JSON leaves as they are (DEL, C1 controls such as U+009B,
    bidi and other format characters, line separators) written as ``\\u``
    escapes; the newlines of indented JSON are kept. ASCII text is checked
    for DEL alone: JSON escapes the other ASCII controls itself."""
    if text.isascii() and "\x7f" not in text:
        return text
    return "\n".join(line if line.isprintable() else
                     "".join(c if c.isprintable() else _json_escape(c) for c in line)
                     for line in text.split("\n"))


def _json_escape(c: str) -> str:
    n = ord(c)
    if n > 0xFFFF:                   # (JSON spells it as a UTF-16 surrogate pair)
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"
