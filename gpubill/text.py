"""Text shown to a person: escaped, bounded, on one line. Every layer may import it.

``escape`` makes control and invisible characters visible (a value can never
drive a terminal or hide text); ``clip`` bounds a text; ``shown`` is the short
quoted form of any value in an error message, and never raises.
"""

from __future__ import annotations

import math
import re
import reprlib

SHOWN_CHARS = 40  # how much of a value an error message quotes

# C0/C1 controls, whitespace other than the space, zero-width and direction marks, BOM.
UNPRINTABLE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS


def _esc(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape(text: str) -> str:
    """Control and invisible characters as escapes (\\x00, \\u202e): never raw in a terminal."""
    return UNPRINTABLE.sub(_esc, text)


def clip(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and "…"."""
    return text if len(text) <= limit else text[:limit] + "…"


def shown(v, limit: int = SHOWN_CHARS) -> str:
    """A short, one-line form of any value for an error message (a string quoted as repr)."""
    if type(v) is str:
        return repr(v if len(v) <= limit else v[:limit - 3] + "...")
    if type(v) is int and v.bit_length() > 128:
        return f"an integer of about {int(v.bit_length() * math.log10(2)) + 1} digits"
    try:
        s = _REPR.repr(v)
    except ValueError:  # an integer beyond Python's str() limit, nested
        return f"a {type(v).__name__}"
    return s if len(s) <= limit else s[:limit - 3] + "..."
