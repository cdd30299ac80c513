"""The confirmations in front of every change: nothing is written until the reviewer says yes.

``ConfirmScreen`` asks a question and says what will happen (y / Enter confirms, n / Esc
cancels); ``ReasonScreen`` does the same and will not confirm until a reason is typed (void);
``SaysWhyNot`` makes a dimmed key say why it does nothing. ``CreditNoteScreen`` asks how much (an amount, or a percent ending in %), a reason from the
list the lifecycle accepts and a description, and answers a ``CreditNoteRequest``. Each is a
modal screen; the mouse works on its buttons too.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import attrs
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from gpubill.service.lifecycle import CREDIT_NOTE_REASONS, parse_item


class SaysWhyNot:
    """A screen mixin: a key shown dimmed (``check_action`` None) says why when pressed, from the
    screen's ``why_not(action)`` (the footer can only dim it)."""

    def on_key(self, event) -> None:
        binding = next((b for b in self.BINDINGS if b.key == event.key), None)
        if binding is not None and self.check_action(binding.action, ()) is None:
            self.notify(self.why_not(binding.action), title=f"{binding.description}: not allowed", severity="warning")


class ReviewModal(ModalScreen):
    """A titled box with text, the caller's fields, and confirm / cancel buttons."""

    DEFAULT_CSS = """
    ReviewModal { align: center middle; }
    ReviewModal .modal-body { width: 84; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
                         background: $surface; border: round $primary; }
    ReviewModal .modal-title { text-style: bold; margin: 0 0 1 0; }
    ReviewModal .modal-error { color: $error; height: auto; }
    ReviewModal .modal-buttons { height: auto; align-horizontal: right; }
    ReviewModal Button { margin: 0 0 0 1; }
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, lines: list[str], confirm: str):
        super().__init__(classes="modal")
        self.title_text, self.lines, self.confirm_label = title, lines, confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body"):
            yield Static(self.title_text, classes="modal-title")
            yield Static("\n".join(self.lines), classes="modal-text")
            yield from self.compose_fields()
            yield Static("", classes="modal-error", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button(self.confirm_label, variant="primary", id="confirm")
                yield Button("cancel (esc)", id="cancel")

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def error(self, text: str) -> None:
        self.query_one(".modal-error", Static).update(text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()


class ConfirmScreen(ReviewModal):
    """A yes/no question; answers True, or None when cancelled."""

    BINDINGS = [Binding("y,enter", "confirm", "confirm"), Binding("n,escape", "cancel", "cancel")]
    AUTO_FOCUS = "#cancel"

    def __init__(self, title: str, lines: list[str], confirm: str = "confirm (y)"):
        super().__init__(title, lines, confirm)


class ReasonScreen(ReviewModal):
    """A question that needs a reason; answers the reason, or None when cancelled."""

    AUTO_FOCUS = "Input"

    def compose_fields(self) -> ComposeResult:
        yield Input(placeholder="reason (required)", id="reason")

    def action_confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.error("a reason is required")
            return
        self.dismiss(reason)

    @on(Input.Submitted, "#reason")
    def _submitted(self) -> None:
        self.action_confirm()


@attrs.frozen
class CreditNoteRequest:
    amount: Decimal | None
    percent: Decimal | None
    reason: str
    description: str
    items: tuple = ()  # (fee index, amount before tax): lines credited

    def what(self, total: str) -> str:
        """What is credited, said against the invoice's ``total`` ("10 % of 1892.63 USD")."""
        if self.items:
            lines = ", ".join(f"line {i + 1} {a:f}" for i, a in self.items)
            return f"{lines} before tax, plus their taxes, of {total}"
        return f"{self.percent:f} % of {total}" if self.percent is not None else f"{self.amount:f} of {total}"


def parse_value(text: str) -> tuple[Decimal | None, Decimal | None, tuple]:
    """``"25.50"`` -> (amount, None, ()); ``"10%"`` -> (None, percent, ()); ``"3=100, 5=20"`` -> (None, None,
    the lines credited before tax: ``lifecycle.parse_item``); ValueError otherwise."""
    text = text.strip().replace(" ", "")
    if "=" in text:
        return None, None, tuple(parse_item(t) for t in text.split(","))
    percent = text.endswith("%")
    try:
        value = Decimal(text.rstrip("%"))
    except InvalidOperation:
        raise ValueError("an amount (25.50), a percent (10%) or lines (3=100, 5=20)") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("the amount or percent must be above 0")
    return (None, value, ()) if percent else (value, None, ())


class CreditNoteScreen(ReviewModal):
    """How much to credit, and why; answers a CreditNoteRequest, or None when cancelled."""

    AUTO_FOCUS = "#value"

    def compose_fields(self) -> ComposeResult:
        yield Input(placeholder="amount (tax included), percent, or lines before tax: 25.50, 10% or 3=100, 5=20",
                    id="value")
        yield Select([(r.replace("_", " "), r) for r in CREDIT_NOTE_REASONS], prompt="reason (required)", id="reason")
        yield Input(placeholder="description (what the customer reads)", id="description")

    def action_confirm(self) -> None:
        try:
            amount, percent, items = parse_value(self.query_one("#value", Input).value)
        except ValueError as e:
            self.error(str(e))
            return
        reason = self.query_one("#reason", Select).value
        if reason is Select.NULL:
            self.error("a reason is required")
            return
        self.dismiss(CreditNoteRequest(amount, percent, str(reason), self.query_one("#description", Input).value.strip(),
                                       items))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_confirm()
