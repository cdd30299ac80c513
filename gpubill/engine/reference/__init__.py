"""The reference engine: the semantics in plain Python with exact rationals (``engine``) and
the per-line trace that ``rate --explain`` prints (``trace``).
"""
