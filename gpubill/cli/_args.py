"""Typed argparse converters: the one place where command-line numbers are checked.

Each converter takes the option's text and returns the value, or raises
``argparse.ArgumentTypeError`` with a message that says what is allowed; argparse
then reports ``argument --opt: <message>`` and exits 2 (see ``cli.build_parser``
for the one-line form). Only plain ASCII numbers are accepted: no NaN or
infinity, no ``1_000``, no other scripts' digits, no surrounding blanks.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from gpubill.text import shown

_INT = re.compile(r"[+-]?[0-9]{1,40}")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?")

MAX_PORT = 65535
MAX_ROWS = 10**12             # --limit / --offset: more rows than any store holds
MAX_BATCH_EVENTS = 100_000    # serve --batch-limit
MAX_BODY_MIB = 1024           # serve --max-body
MAX_CHUNK = 1 << 20           # ingest --chunk
MAX_DEMO_EVENTS = 100_000_000
MAX_SEED = 2**64 - 1
MAX_HOURS = 100 * 366 * 24    # --max-future: a century (any longer lead checks nothing more)
MAX_SECONDS = 24 * 3600       # serve --body-timeout


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """An integer from ``lo`` to ``hi`` inclusive."""
    def convert(text: str) -> int:
        if not (text.isascii() and _INT.fullmatch(text)) or not lo <= int(text) <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer from {lo} to {hi}, got {shown(text)}")
        return int(text)
    convert.__name__ = f"integer from {lo} to {hi}"
    return convert


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    """A finite decimal number from ``lo`` to ``hi`` inclusive."""
    def convert(text: str) -> float:
        v = float(text) if text.isascii() and _FLOAT.fullmatch(text) else math.nan
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"must be a number from {lo:g} to {hi:g}, got {shown(text)}")
        return v
    convert.__name__ = f"number from {lo:g} to {hi:g}"
    return convert


port = int_range(0, MAX_PORT)
rows = int_range(1, MAX_ROWS)
offset = int_range(0, MAX_ROWS)
hours = float_range(0, MAX_HOURS)
seconds = float_range(0.1, MAX_SECONDS)
