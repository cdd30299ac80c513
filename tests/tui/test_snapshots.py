"""The layout, pinned: the overview and a customer at 80x24, the customers at 160x50 (a fixed clock and store).

After a deliberate change of layout, look at the report pytest writes, then
accept with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from .conftest import settle


def test_overview_at_80x24(make_app, snap_compare):
    assert snap_compare(make_app(as_user="ana"), terminal_size=(80, 24), run_before=settle)


def test_customers_at_160x50(make_app, snap_compare):
    async def customers(pilot):
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(make_app(as_user="ana"), terminal_size=(160, 50), run_before=customers)


def test_a_customer_at_80x24(make_app, snap_compare):
    async def customer(pilot):
        await settle(pilot)
        pilot.app.open_customer("sub_meridian_mlp")
        await settle(pilot)

    assert snap_compare(make_app(as_user="ana"), terminal_size=(80, 24), run_before=customer)
