"""The header line: where you are (Overview › Customers › acme), as whom, which month, how fresh."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

SEPARATOR = " › "


class Breadcrumb(Static):
    """``crumbs`` on the left; ``status`` (actor, month, age of the data) on the right."""

    crumbs: reactive[tuple[str, ...]] = reactive(())
    status: reactive[str] = reactive("")

    def render(self) -> str:
        return f"gpubill{SEPARATOR}{SEPARATOR.join(self.crumbs)}" + (f"   [{self.status}]" if self.status else "")
