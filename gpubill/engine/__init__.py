"""The rating engine: resolved IR + event columns -> exact rated lines.

Five subpackages, each named for what it holds: ``spec`` (the rating spec
and its compiler), ``calendar`` (the one billing ``Period`` and a
subscription's ``Coverage`` of it), ``pricing`` (money and its one rounding
function, Lago's charge models, line usage, lines and fees), ``reference``
(the plain-Python engine in exact rationals, and its trace) and ``fast``
(kernel tables, numba kernels, decoding).  Quantities are int64 fixed point
inside the kernels; money is Decimal, priced once per line and rounded once
by the plan's rule.  Imports only ``dsl`` and ``numbers``.
"""
