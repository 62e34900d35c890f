"""numpy's repr of the arrays CA carries, written faster, byte for byte the same."""
from __future__ import annotations

import math
import sys
from typing import Dict

import numpy as np

_NO_WRAP = sys.maxsize

# numpy formats each element of a float array twice with dragon4 in Python
# loops (3 ms for 1000 doubles). For the arrays CA carries (1-D, at most
# numpy's summarisation threshold, float64 in positional notation, or
# integers) the same text can be built from Python's shortest float repr,
# which is what dragon4's "unique" mode produces when it has at most 8
# fractional digits (numpy's default precision); with more, dragon4 rounds
# the exact value at 8 digits, as C's "%.8f" does, and trims the zeros.
# Anything else goes to numpy. The
# first arrays of each kind are also formatted by numpy and compared: any
# difference (another numpy version, other print options) turns the fast
# path off for good.
_VERIFY_FIRST = 32
_TINY = float(np.finfo(np.float64).tiny)
_EXACT_8F = 2.0 ** 26
_isfinite = math.isfinite
_fast = {"f": [0, True], "i": [0, True]}      # kind -> [verified so far, enabled]
_suffixes: Dict[str, str] = {}


def array_repr(a) -> str:
    """``repr(a)`` with numpy's line wrapping off."""
    kind = a.dtype.kind
    if kind == "u":
        kind = "i"
    state = _fast.get(kind)
    if state is not None and state[1] and a.ndim == 1 and 0 < a.size <= _threshold():
        text = _fast_float(a) if kind == "f" else _fast_int(a)
        if text is not None:
            if state[0] >= _VERIFY_FIRST:
                return text
            slow = np.array_repr(a, max_line_width=_NO_WRAP)
            state[0] += 1
            if slow != text:
                state[1] = False
            return slow
    return np.array_repr(a, max_line_width=_NO_WRAP)


def _threshold() -> int:
    return np.get_printoptions()["threshold"]


def _suffix(a) -> str:
    """What follows the elements in numpy's repr: ", dtype='>f8')" or ")"."""
    key = a.dtype.str
    text = _suffixes.get(key)
    if text is None:
        one = np.array_repr(a[:1], max_line_width=_NO_WRAP)
        text = _suffixes[key] = one[one.index("]") + 1:]
    return text


def _default_float_options(opts=None) -> bool:
    """numpy prints floats as the fast paths write them (its defaults)."""
    opts = opts or np.get_printoptions()
    return (opts["precision"] == 8 and opts["floatmode"] == "maxprec" and not opts["suppress"]
            and opts["sign"] == "-" and opts["legacy"] is False and not opts["formatter"])


def _fast_float(a):
    if a.dtype.itemsize != 8 or not _default_float_options():
        return None                   # float32 has its own shortest digits
    if a.size < _MATRIX_MIN:
        # short arrays (most are scalars): numpy's per-call costs (a big-endian
        # array is converted for every ufunc) are ten times the Python ones
        body = _positional_body(a.tolist())
        if body is not None:
            return f"array([{body}]{_suffix(a)}"
    if not np.isfinite(a).all():
        return None
    nonzero = np.abs(a[a != 0])
    if nonzero.size:
        hi, lo = nonzero.max(), nonzero.min()
        if lo < _TINY:
            return None                   # subnormals: dragon4 and repr pick other digits
        if _scientific(hi, lo):
            return _fast_scientific(a)
        if hi >= _EXACT_8F:
            return f"array([{_positional_body(a.tolist())}]{_suffix(a)}"
    return _fixed_matrix(a)        # (a short array has been written above)


def _scientific(hi, lo) -> bool:
    """numpy's choice of notation, from the largest and smallest magnitudes."""
    return hi >= 1e8 or lo < 1e-4 or hi / lo > 1000.0


def _positional_body(values):
    """The elements of numpy's repr of a short float64 array, from their
    Python floats, when numpy writes them in positional notation; else None
    (non-finite values, subnormals, scientific notation)."""
    if len(values) == 1:
        return _scalar_body(values[0])
    if not all(map(_isfinite, values)):
        return None
    nonzero = [abs(x) for x in values if x]     # (-0.0 is zero too)
    if nonzero:
        hi, lo = max(nonzero), min(nonzero)
        if lo < _TINY or _scientific(hi, lo):
            return None
    if not nonzero or hi < _EXACT_8F:
        # below 2**26 a double is closer to its shortest repr than 0.5e-8:
        # "%.8f" rounds to the same digits (past 8 digits, it is dragon4's cut-off)
        pairs = [("%.8f" % x).rstrip("0").partition(".") for x in values]
        ints = [p[0] for p in pairs]
        fracs = [p[2] for p in pairs]
    else:
        ints, fracs = [], []
        for x in values:
            text = repr(x)
            whole, _, frac = text.partition(".")
            if frac == "0":
                frac = ""
            elif len(frac) > 8 or "e" in text:
                whole, _, frac = ("%.8f" % x).rstrip("0").partition(".")
            ints.append(whole)
            fracs.append(frac)
    left = max(map(len, ints))
    right = max(map(len, fracs))
    return ", ".join(f"{i.rjust(left)}.{f.ljust(right)}" for i, f in zip(ints, fracs))


def _scalar_body(x):
    """_positional_body of one value (most messages carry one): no widths to
    align, and numpy's choice of notation depends on the value alone."""
    if not _isfinite(x):
        return None
    a = abs(x)
    if a and (a >= 1e8 or a < 1e-4):
        return None                   # scientific notation (or a subnormal)
    if a < _EXACT_8F:
        return ("%.8f" % x).rstrip("0")
    # from 2**26 to 1e8 a double's spacing is over 1e-8: its shortest repr
    # has at most 8 fractional digits, which dragon4 writes as they are
    text = repr(x)
    return text[:-1] if text.endswith(".0") else text


_ZERO, _DOT, _E, _MINUS, _SPACE, _COMMA = (ord(c) for c in "0.e- ,")
_DIGIT_INDEX = np.arange(8)
_DIGIT_PLACES = _DIGIT_INDEX + 1
_MATRIX_MIN = 64       # below this many elements Python's string methods are faster


def _fixed_matrix(a):
    """The "%.8f" branch of _fast_float for long arrays: every element written
    right-aligned to one width (so the integer parts are right-aligned), then
    the trailing zeros of each fraction turned into spaces and the fraction
    columns no element uses dropped, as numpy pads them."""
    values = tuple(a.tolist())
    n = len(values)
    # the widest texts are those of the largest and of the most negative value
    # (rounding is monotonic); -0.0 may hide behind 0.0: the length check sees it
    width = max(len("%.8f" % max(values)), len("%.8f" % min(values)))
    text = f"%{width}.8f," * n % values
    if len(text) == n * (width + 1):
        chars = _char_matrix(text, n, width)
    else:
        width = max(map(len, ("%.8f," * n % values)[:-1].split(",")))
        chars = _char_matrix(f"%{width}.8f," * n % values, n, width)
    frac = chars[:, width - 8:]
    kept = np.where(frac != _ZERO, _DIGIT_PLACES, 0).max(axis=1)   # digits to keep per row
    right = int(kept.max())
    out = np.empty((n, width - 8 + right), dtype=np.uint8)
    out[:, :width - 8] = chars[:, :width - 8]
    out[:, width - 8:] = np.where(_DIGIT_INDEX[:right] < kept[:, None], frac[:, :right], _SPACE)
    return f"array([{_rows_text(out)}]{_suffix(a)}"


def _char_matrix(text: str, n: int, width: int):
    """The ASCII ``text`` of ``n`` fields of ``width`` characters, each
    followed by one separator, as an (n, width) uint8 matrix."""
    return np.frombuffer(text.encode("ascii"), np.uint8).reshape(n, width + 1)[:, :width]


def _rows_text(rows) -> str:
    """The rows of a character matrix joined by ", "."""
    n, width = rows.shape
    out = np.empty((n, width + 2), dtype=np.uint8)
    out[:, :width] = rows
    out[:, width] = _COMMA
    out[:, width + 1] = _SPACE
    return out.tobytes()[:-2].decode("ascii")


# Scientific notation, as numpy's dragon4 writes it with precision 8: each
# value's shortest digits, or the value rounded to 9 significant digits when
# the shortest needs more; both are C's "%.8e" without its trailing zeros (a
# double is within 1e-16, relative, of its shortest repr: far closer than 9
# digits can tell apart). All elements are padded to the same precision and
# exponent width, so every element has the same width: the texts are laid
# out as a character matrix and assembled column by column with numpy.
def _fast_scientific(a):
    n = a.size
    # "d.dddddddde+XX" or "d.dddddddde+XXX" for each magnitude (signs added below)
    text = "%.8e," * n % tuple(np.abs(a).tolist())
    if len(text) == 15 * n:                                      # no exponent of 100 or more
        chars = _char_matrix(text, n, 14)
        three = False
    else:
        texts = np.array(text[:-1].split(","))                  # short ones padded with NUL
        width = texts.dtype.itemsize // 4
        chars = texts.view(np.uint32).reshape(n, width)
        three = width == 15 and bool((chars[:, 14] != 0).any())
    used = np.flatnonzero((chars[:, 2:10] != _ZERO).any(axis=0))
    precision = int(used[-1]) + 1 if used.size else 0
    negative = np.signbit(a)
    signed = bool(negative.any())
    out = np.empty((n, signed + 2 + precision + 2 + (3 if three else 2)), dtype=np.uint8)
    col = 0
    if signed:
        out[:, 0] = np.where(negative, _MINUS, _SPACE)
        col = 1
    out[:, col] = chars[:, 0]
    out[:, col + 1] = _DOT
    col += 2
    out[:, col:col + precision] = chars[:, 2:2 + precision]
    col += precision
    out[:, col] = _E
    out[:, col + 1] = chars[:, 11]                              # exponent sign
    col += 2
    if three:
        short = chars[:, 14] == 0                               # two digits: pad with 0
        out[:, col] = np.where(short, _ZERO, chars[:, 12])
        out[:, col + 1] = np.where(short, chars[:, 12], chars[:, 13])
        out[:, col + 2] = np.where(short, chars[:, 13], chars[:, 14])
    else:
        out[:, col:col + 2] = chars[:, 12:14]
    return f"array([{_rows_text(out)}]{_suffix(a)}"


def _fast_int(a):
    if np.get_printoptions()["formatter"]:
        return None
    return f"array([{_int_body(a.tolist())}]{_suffix(a)}"


def _int_body(values) -> str:
    if len(values) == 1:
        return str(values[0])
    strs = [str(x) for x in values]
    width = max(map(len, strs))
    return ", ".join(s.rjust(width) for s in strs)

