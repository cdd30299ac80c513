"""The column layout of every kernel table, declared once.

``tables.py`` writes these int64 tables, the kernels (``accumulate.py``,
``shaped.py``) read them, and ``rate.py`` decodes the accumulators with the
same names: a table is addressed ``TABLE[row, COLUMN]``, never by a raw
column number.  Each layout ends with its width (``*_NCOL``), the number of
columns ``tables.py`` allocates.  Module-level ints are compile-time
constants to numba, so a named column costs nothing in a kernel.
"""

from __future__ import annotations

import numpy as np

# SUB: one row per subscription (plus one closing row for S_BOFF)
S_PLIST, S_RANK, S_LO, S_HI, S_BOFF, S_EFF, S_DBASE, S_LP, S_XBASE, S_EP, S_NCOL = range(11)
# INST: one row per charge instance (a charge of a program list)
I_CP, I_REC, I_BASE, I_STRIDE, I_IGN, I_HASHED, I_LOFF, I_XOFF, I_NCOL = range(9)
# CP: one row per charge program
C_FLAGS, C_Q, C_NF, C_ALL, C_KOFF, C_KN, C_ORD, C_BOFF, C_GOFF, C_GN, C_G, C_CENTS, C_NCOL = range(13)
# KEY: one row per filter key of a program
K_DIM, K_VLUT, K_MOFF, K_NCOL = range(4)
# BKT: one row per filter bucket of a program (its filters, then the unfiltered rest)
B_LINE, B_NW1, B_WBOFF, B_WBN, B_CWOFF, B_NCOL = range(6)
# GK: one row per group by key of a program
G_DIM, G_LUT, G_MULT, G_NCOL = range(4)
# Q: one row per distinct quantity
Q_KIND, Q_TOFF, Q_TN, Q_UTIL, Q_UFLOOR, Q_UCEIL, Q_UID, Q_NCOL = range(8)
# TERM: one row per term of a quantity's polynomial
T_COEF, T_FOFF, T_FN, T_NCOL = range(4)
# FAC: one row per factor (a numeric property, with its per-event rounding) of a term
# (FA_MAGIC, FA_SHIFT: kernels.divider of the increment; shift -1 when it is 1)
FA_SLOT, FA_FLAGS, FA_INC, FA_MIN, FA_MAX, FA_MAGIC, FA_SHIFT, FA_NCOL = range(8)
# acc: the accumulator of a line slot (event count, checked sum of the quantity)
A_COUNT, A_SUM, A_NCOL = range(3)
# ext: the extended accumulator of a line slot (max / latest / prorated / cents)
X_MAX, X_LVAL, X_LTS, X_LROW, X_PROR, X_CENTS, X_NCOL = range(7)

# program flags (CP[:, C_FLAGS])
F_MAX, F_LAST, F_PROR, F_CENTS, F_SIDE, F_UNIQUE = 1, 2, 4, 8, 16, 32
F_EXT = F_MAX | F_LAST | F_PROR | F_CENTS  # the flags that need an ext row
# quantity kinds (Q[:, Q_KIND])
QK_COUNT, QK_POLY, QK_UID = 0, 1, 2
# per-event rounding flags (FAC[:, FA_FLAGS]): which of increment, minimum, maximum are set
PE_INC, PE_MIN, PE_MAX = 1, 2, 4

# table name -> its column names, in order (the test that no raw column number is left reads it)
TABLES = {
    "SUB": "S_", "INST": "I_", "CP": "C_", "KEY": "K_", "BKT": "B_", "GK": "G_", "Q": "Q_", "TERM": "T_",
    "FAC": "FA_", "acc": "A_", "ext": "X_",
}


def row(width: int, cells: dict) -> list:
    """One table row of ``width`` columns: ``cells`` maps a column to its value, the others are 0."""
    out = [0] * width
    for col, value in cells.items():
        out[col] = value
    return out


def vector(values):
    """An int64 vector (one zero when empty, as the kernel tables always have)."""
    return np.asarray(values if len(values) else [0], np.int64)


def table(rows, width):
    """An int64 table of ``width`` columns (one zero row when empty)."""
    return np.asarray(rows or [[0] * width], np.int64).reshape(-1, width)
