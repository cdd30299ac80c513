"""`?`: every key, the app's and the screen's, in one modal list."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
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
        for title, keys in self.groups:  # keys and titles go in as values, never read as markup ("[" is a key)
            lines.append(Content.from_markup("[b]$title[/b]", title=title))
            lines.extend(Content.from_markup("  [b $accent]$key[/] $what", key=f"{k:<12}", what=what)
                         for k, what in keys)
            lines.append(Content(""))
        with VerticalScroll(classes="help-body"):
            yield Static(Content("\n").join(lines))

    def action_dismiss(self) -> None:
        self.dismiss()

