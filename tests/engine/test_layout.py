"""The kernel tables' layout is declared once (``engine/fast/layout.py``) and
every writer, kernel and decoder addresses a table's columns by those names:
no ``INST[x, 5]``, no row written as a positional list."""

import ast
from pathlib import Path

import pytest

from gpubill.engine.fast import layout

ENGINE = Path(layout.__file__).parent


def _table_name(node):
    """The kernel table a subscripted expression names (``INST``, ``a.acc``, ``a["BKT"]``), or None."""
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        name = node.slice.value
    else:
        return None
    return name if name in layout.TABLES else None


def _int_literal(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def raw_columns(source: str) -> list[str]:
    """``TABLE[rows, <int literal>]`` subscripts and positional rows appended to a table, as text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _table_name(node.value) and isinstance(node.slice, ast.Tuple):
            if _int_literal(node.slice.elts[-1]):
                found.append(ast.unparse(node))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "extend") and _table_name(node.func.value)
                and any(isinstance(a, (ast.List, ast.Tuple)) for a in node.args)):
            found.append(ast.unparse(node))
    return found


def test_the_detector_flags_raw_columns_and_only_them():
    bad = 'INST[x, 5] = 1\nv = a["BKT"][:, 0]\nw = p.acc[rows, 1]\nSUB[-1, -2]\nself.TERM.append([c, 0, 1])\n'
    assert raw_columns(bad) == ["INST[x, 5]", "a['BKT'][:, 0]", "p.acc[rows, 1]", "SUB[-1, -2]",
                                "self.TERM.append([c, 0, 1])"]
    fine = 'INST[x, I_HASHED] = 1\nv = a["BKT"][:, B_LINE]\nm = other[i, 0]\nINST[x]\nSUB[:nsub]\ncells[3]\n'
    assert raw_columns(fine) == []


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_no_raw_column_numbers_in_the_engine(path):
    assert raw_columns(path.read_text()) == []


def test_every_layout_numbers_its_columns_from_zero_to_its_width():
    names = [n for n in vars(layout) if n.isupper() and isinstance(getattr(layout, n), int)]
    for prefix in layout.TABLES.values():
        cols = sorted(getattr(layout, n) for n in names if n.startswith(prefix) and not n.endswith("_NCOL"))
        assert cols == list(range(getattr(layout, prefix + "NCOL"))), prefix
