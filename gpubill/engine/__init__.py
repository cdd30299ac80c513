"""The rating engine: resolved IR + event columns -> exact rated lines.

Quantities are int64 fixed point inside numba kernels; money is Decimal,
priced once per line and rounded once by the plan's rule. A plain-Python
Decimal reference engine states the same semantics. Imports only `dsl`.
"""
