"""`?`: every key, the app's and the screen's, in one modal list."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen):
    """The keys: (key, what it does) pairs, grouped; any key closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close", show=False)]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]):
        super().__init__(classes="help")
        self.groups = groups

    def compose(self) -> ComposeResult:
        lines = []
        for title, keys in self.groups:
            lines.append(f"[b]{title}[/b]")
            lines.extend(f"  [b $accent]{k:<12}[/] {what}" for k, what in keys)
            lines.append("")
        with VerticalScroll(classes="help-body"):
            yield Static("\n".join(lines))

    def action_dismiss(self) -> None:
        self.dismiss()

