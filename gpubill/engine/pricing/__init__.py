"""Pricing: a line's usage (``usage``), Lago's charge models (``models``), pricing and
assembling lines and fees (``price``, ``fees``), and exact money with its one rounding
function (``money``).
"""
