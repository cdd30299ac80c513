"""A DataTable that filters (`/`), sorts (`s`, `S`, or a click on a header) and says when it shows part only.

The rows live here, in Python (a key, the cells shown, the values sorted by);
the DataTable holds at most ``cap`` of them at a time, since loading rows
into it is what costs (about 1 s for 10 000): filtering and sorting 10 000
rows here takes milliseconds. The caption says "100 of 10000" (and "filter 'acme' keeps 10000 of 12000")
whenever some rows are not shown, never implying a part is the whole.
A filter starting with ``!`` keeps the rows that do NOT match (k9s's ``/!``).
Enter on a row posts ``FilterTable.Chosen`` with the row's key.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

DEFAULT_CAP = 100  # rows held by the DataTable at once: two screens of 50 lines; each costs at every load


@attrs.frozen
class Column:
    label: str
    key: str
    numeric: bool = False  # right-aligned; sorted largest first on the first press


@attrs.frozen
class Row:
    key: str
    cells: tuple  # what is shown (str or rich Text), one per column
    values: tuple  # what is sorted by, one per column (None sorts last)
    text: str = ""  # what the filter matches (default: the cells joined)

    def matches(self, needle: str) -> bool:
        return needle in (self.text or " ".join(str(c) for c in self.cells)).lower()


class FilterTable(Vertical, can_focus=False):
    """See the module's docstring."""

    BINDINGS = [
        Binding("s", "sort_next", "sort", tooltip="sort by the next column"),
        Binding("S", "sort_reverse", "reverse", show=False, tooltip="reverse the order"),
    ]

    class Chosen(Message):
        """Enter (or a click) on a row."""

        def __init__(self, table: "FilterTable", key: str):
            super().__init__()
            self.table, self.key = table, key

        @property
        def control(self) -> "FilterTable":
            return self.table

    def __init__(self, columns: Sequence[Column], *, cap: int = DEFAULT_CAP, id: str | None = None,
                 classes: str = ""):
        super().__init__(id=id, classes=f"filter-table {classes}".strip())
        self.columns = tuple(columns)
        self.cap = cap
        self.rows: list[Row] = []
        self.shown: list[Row] = []
        self.needle = ""
        self.sort_column: int | None = None
        self.descending = False
        # Made here, not in compose: the app asks whether the filter is open (for the footer) at any time,
        # a table still mounting included.
        self.box = Input(placeholder="filter (! inverts; enter: to the table, esc: clear)", classes="filter-input")
        self.box.display = False  # until `/`
        self.table = DataTable(cursor_type="row", zebra_stripes=True)
        for c in self.columns:
            self.table.add_column(c.label, key=c.key)
        self.caption_line = Static("", classes="filter-caption")

    def compose(self) -> ComposeResult:
        yield self.box
        yield self.table
        yield self.caption_line

    # -- data ---------------------------------------------------------------
    def set_rows(self, rows: Sequence[Row]) -> None:
        """Replace every row (the cursor stays on the same key when it is still shown)."""
        self.rows = list(rows)
        self._show()

    def cursor_key(self) -> str | None:
        table = self.table
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= min(len(self.shown), self.cap):
            return None
        return self.shown[table.cursor_row].key

    def _show(self) -> None:
        keep = self.cursor_key()
        rows = self._filtered()
        if self.sort_column is not None:
            rows = _sorted(rows, self.sort_column, self.descending)
        self.shown = rows
        table = self.table
        table.clear()
        table.add_rows([_aligned(r.cells, self.columns) for r in rows[:self.cap]])
        keys = [r.key for r in rows[:self.cap]]
        if keep in keys:
            table.move_cursor(row=keys.index(keep), animate=False)
        self.caption_line.update(self.caption())

    def _filtered(self) -> list[Row]:
        needle = self.needle.lower()
        invert = needle.startswith("!")
        needle = needle[1:] if invert else needle
        if not needle:
            return list(self.rows)
        return [r for r in self.rows if r.matches(needle) != invert]

    def caption(self) -> str:
        n, total = len(self.shown), len(self.rows)
        parts = [f"{min(n, self.cap)} of {n}" if n > self.cap else f"{n} rows"]
        if self.needle:
            parts.append(f"filter {self.needle!r} keeps {n} of {total}")
        if self.sort_column is not None:
            parts.append(f"sorted by {self.columns[self.sort_column].label} {'▼' if self.descending else '▲'}")
        return " · ".join(parts)

    # -- filter ---------------------------------------------------------------
    def open_filter(self, text: str | None = None) -> None:
        """Show the filter box and focus it (``text``: filter by it, and focus the table)."""
        self.box.display = True
        if text is None:
            self.box.focus()
        else:
            self.box.value = text
            self.table.focus()

    @on(Input.Changed, ".filter-input")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.needle = event.value
        self._show()

    @on(Input.Submitted, ".filter-input")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def filter_open(self) -> bool:
        return bool(self.box.display)

    def close_filter(self) -> bool:
        """Clear and hide the filter box; False when it was not open."""
        if not self.filter_open():
            return False
        self.box.value = ""
        self.box.display = False
        self.needle = ""
        self._show()
        self.table.focus()
        return True

    # -- sort -----------------------------------------------------------------
    def sort_by(self, column: int, descending: bool | None = None) -> None:
        if descending is None:
            descending = (not self.descending) if column == self.sort_column else self.columns[column].numeric
        self.sort_column, self.descending = column, descending
        self._show()

    def action_sort_next(self) -> None:
        self.sort_by(0 if self.sort_column is None else (self.sort_column + 1) % len(self.columns))

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column or 0, not self.descending)

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_index)

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = self.cursor_key()
        if key is not None:
            self.post_message(self.Chosen(self, key))


def _sorted(rows: list[Row], column: int, descending: bool) -> list[Row]:
    present = [r for r in rows if r.values[column] is not None]
    missing = [r for r in rows if r.values[column] is None]
    return sorted(present, key=lambda r: r.values[column], reverse=descending) + missing


def _aligned(cells: tuple, columns: tuple[Column, ...]) -> list:
    """Cells as Text: a string cell would be read as markup (a customer named "[b]Acme" shown bold, or an
    error), and parsed again at every draw."""
    return [c if isinstance(c, Text) else Text(str(c), justify="right" if col.numeric else "left")
            for c, col in zip(cells, columns)]

