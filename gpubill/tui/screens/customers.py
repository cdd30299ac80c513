"""Customers (key 2): every subscription of the contracts. Filled in below."""

from __future__ import annotations

from gpubill.tui.widgets.frame import ReviewScreen


class CustomersScreen(ReviewScreen):
    CRUMBS = ("Customers",)
