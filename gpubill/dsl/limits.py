"""The bounds a `.bill` source stays within, declared once (docs/diagnostics.md names each).

A `.bill` file is source code written by people: these bounds are far above
any real plan or contract and keep a hostile or broken file from crashing,
hanging or flooding the terminal. Each bound is checked before the code it
protects runs, and crossing it is an ordinary diagnostic.
"""

from __future__ import annotations

#: A larger file is refused unread (rule unreadable-file): parsing is linear but
#: takes seconds per megabyte; 4 MiB holds some 20 000 contracts.
MAX_SOURCE_BYTES = 4 * 1024 * 1024

#: A larger Lago JSON file is refused unread by `gpubill import lago`.
MAX_IMPORT_BYTES = 64 * 1024 * 1024

#: Nesting of a Lago JSON file (rule lago-invalid); Lago objects nest a few levels.
MAX_JSON_DEPTH = 100

#: Operators (+ - * / and unary minus) in one quantity expression (rule
#: expression-too-complex). The parser, checker, formatter and engine walk
#: expressions recursively; this keeps them far from Python's recursion limit.
MAX_EXPR_OPERATORS = 100

#: Terms of an expression once multiplied out (rule expression-too-complex):
#: the engine expands a product of sums into a polynomial.
MAX_EXPR_TERMS = 1000

#: Digits in one number literal (rule number-too-long). 28 is the precision
#: of Python's default decimal context, so every check on a literal is exact.
MAX_NUMBER_DIGITS = 28

#: Decimals a metric rounds to, either way (rule precision-range): the engine
#: scales quantities by 10**precision.
MAX_ROUNDING_PRECISION = 28

#: Identical events one `usage ... times N` line of a test block stands for
#: (rule times-too-large): a test's events are made one by one, so N bounds
#: the time and memory a test takes; a real test needs a few thousand at most.
MAX_USAGE_TIMES = 1_000_000

#: Diagnostics `gpubill check` and `gpubill fmt` print as text; the rest are
#: counted (`gpubill check --format json` lists them all).
MAX_SHOWN_DIAGNOSTICS = 200

#: Columns of a source line shown under a diagnostic; longer lines show a
#: window around the caret, with "…" where text is cut.
SHOWN_COLUMNS = 100

#: Characters of source text quoted in a diagnostic's message or hint.
QUOTED_CHARS = 60
