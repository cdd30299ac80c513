"""A customer's subscription. Filled in below."""

from __future__ import annotations

from gpubill.tui.widgets.frame import ReviewScreen


class CustomerScreen(ReviewScreen):
    def __init__(self, subscription: str):
        super().__init__()
        self.subscription = subscription

    def crumbs(self) -> tuple[str, ...]:
        return ("Customers", self.subscription)
