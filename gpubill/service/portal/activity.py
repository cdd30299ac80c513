"""A customer's usage in billing periods, as the portal's pages show it: plain rows, no HTML.

Receives the final invoices ``gpubill invoice`` computes for the periods
(``invoicing.invoice_catalog``: ``Invoice`` objects) and the store; answers,
per invoice, its lines and its usage amount and total exactly as its
document says them (``invoice_json``: the usage amount is the sum of the
document's usage lines, the total its ``total_amount``, so both equal
``gpubill invoice --format json`` to the cent), and the GPU-hours of the
period's events by GPU type, region and local day of the contract's
timezone (the chart's data). GPU-hours are quantities, not money: floats,
as the reviewer's screens count them (``review.event_gpu_hours``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs
import numpy as np

from gpubill.contracts.context import local_date
from gpubill.service.invoice_report import invoice_json
from gpubill.service.review import event_gpu_hours
from gpubill.service.usage import _usage_fees as usage_fees

ZERO = Decimal(0)


@attrs.frozen
class FeeRow:
    """One line of an invoice document (docs/invoice-json.md), as a readable table shows it."""

    name: str
    fee_type: str  # item.type: subscription | charge (usage) | reservation | credit | commitment
    kind: str | None  # item.kind: fee | usage | reserved | covered | policy | true_up
    units: str | None  # the exact units, as the document writes them
    unit_price: str | None  # the document's precise_unit_amount, when the line has one
    amount: Decimal
    dimensions: dict  # gpu_type, region, availability_class, ... -> value (empty: none)


def fee_rows(doc: dict) -> tuple[FeeRow, ...]:
    """The document's fee lines, in its order."""
    return tuple(FeeRow(f["item"]["name"], f["item"]["type"], f["item"].get("kind"), f.get("units"),
                        f.get("precise_unit_amount"), Decimal(f["amount"]), dict(f.get("dimensions") or {}))
                 for f in doc["fees"])


def usage_amount(doc: dict) -> Decimal:
    """The sum of the document's usage lines (what Lago's customer usage counts: ``service.usage``)."""
    return sum((Decimal(f["amount"]) for f in usage_fees(doc["fees"])), ZERO)


@attrs.frozen
class GpuTypeUsage:
    gpu_type: str
    gpu_hours: float  # of the events: duration_seconds * gpu_count / 3600, before the plan's per-event rounding
    events: int  # events that say their duration, GPU count and this GPU type
    amount: Decimal | None  # the invoice's usage lines with this gpu_type dimension, summed (None: no such line)


@attrs.frozen
class RegionUsage:
    region: str  # "" : events that name no region
    gpu_hours: float
    events: int


@attrs.frozen
class Daily:
    """The chart: GPU-hours per local day of the billing period (the contract's timezone)."""

    days: tuple[str, ...]  # ISO dates, first to last day of the period
    series: dict  # GPU type -> tuple of GPU-hours per day (the days' order)
    totals: tuple[float, ...]  # GPU-hours per day, every GPU type
    events: tuple[int, ...]  # events per day, every event code


@attrs.frozen
class SubscriptionUsage:
    """One billing period of one subscription: its draft invoice's usage so far, and its events."""

    subscription: str
    contract: str
    currency: str
    period_label: str
    from_ms: int  # the billing period, both ends inclusive
    to_ms: int
    events: int  # events of the subscription stored with a timestamp in the period (every code)
    last_event_ms: int | None  # the newest of their timestamps
    usage_amount: Decimal  # the sum of the draft's usage lines (fee item type "charge")
    total: Decimal  # the draft's total_amount
    lines: tuple[FeeRow, ...]  # every line of the draft
    by_gpu_type: tuple[GpuTypeUsage, ...]  # most GPU-hours first
    by_region: tuple[RegionUsage, ...]  # most GPU-hours first
    daily: Daily
    doc: dict = attrs.field(eq=False, repr=False)  # the draft's document (invoice_json)


@attrs.frozen
class Usage:
    customer: str
    period: str  # what was invoiced: a month "YYYY-MM", or the date whose billing periods contain now
    as_of_ms: int  # when it was computed
    last_event_ms: int | None  # the newest event timestamp of the customer's subscriptions in these periods
    subscriptions: tuple[SubscriptionUsage, ...]  # one per billing period invoiced, in contract order
    unrated: tuple[str, ...] = ()  # why a contract could not be invoiced (one line each)


def usage_of(store, customer: str, period: str, invoices, unrated: tuple[str, ...], as_of_ms: int) -> Usage:
    """The customer's usage in the invoices' periods (final invoices, one per billing period)."""
    rows = tuple(subscription_usage(store, inv) for inv in invoices)
    last = max((r.last_event_ms for r in rows if r.last_event_ms is not None), default=None)
    return Usage(customer, period, as_of_ms, last, rows, unrated)


def subscription_usage(store, inv) -> SubscriptionUsage:
    b = inv.billing
    doc = invoice_json(inv)
    frm, to = b.period.from_ms, b.period.to_ms
    cols = store.read_columns(time_from_ms=frm, time_to_ms=to, subscriptions=[b.subscription_id])
    days, starts = local_days(frm, to, b.timezone)
    day = np.clip(np.searchsorted(starts, cols.timestamp_ms, side="right") - 1, 0, len(days) - 1)
    lines = fee_rows(doc)
    by_gpu, by_region, series = _gpu_usage(cols, day, len(days), lines)
    totals = tuple(float(x) for x in np.sum(list(series.values()), axis=0)) if series else (0.0,) * len(days)
    daily = Daily(days, series, totals, tuple(np.bincount(day, minlength=len(days)).tolist()))
    last = int(cols.timestamp_ms.max()) if cols.n else None
    return SubscriptionUsage(b.subscription_id, b.contract.name.name, inv.currency, b.period.label, frm, to, cols.n,
                             last, usage_amount(doc), Decimal(doc["total_amount"]), lines, by_gpu, by_region, daily,
                             doc)


def local_days(from_ms: int, to_ms: int, timezone: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The local dates from ``from_ms`` to ``to_ms`` and when each begins (UTC ms)."""
    zone = ZoneInfo(timezone)
    day, last = local_date(from_ms, timezone), local_date(to_ms, timezone)
    days, starts = [], []
    while day <= last:
        days.append(day.isoformat())
        starts.append(int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000))
        day += dt.timedelta(days=1)
    return tuple(days), np.array(starts, np.int64)


def _gpu_usage(cols, day: np.ndarray, n_days: int, lines: tuple[FeeRow, ...]):
    """(by GPU type, by region, GPU type -> GPU-hours per day) of the events that say their GPU-hours."""
    found = event_gpu_hours(cols)
    ok, hours = found if found is not None else (np.zeros(cols.n, bool), np.zeros(0))
    gpu, day = cols.dim("gpu_type")[ok], day[ok]
    region = cols.dim("region")[ok] if "region" in cols.property_names() else np.full(hours.size, -1)
    series, by_gpu = {}, []
    for g in np.unique(gpu).tolist():
        mine = gpu == g
        name = cols.strings[g]
        series[name] = tuple(np.bincount(day[mine], weights=hours[mine], minlength=n_days).tolist())
        by_gpu.append(GpuTypeUsage(name, float(hours[mine].sum()), int(mine.sum()), _amount_of(lines, name)))
    priced = {f.dimensions["gpu_type"] for f in lines if f.fee_type == "charge" and "gpu_type" in f.dimensions}
    by_gpu += [GpuTypeUsage(g, 0.0, 0, _amount_of(lines, g)) for g in sorted(priced - set(series))]  # no GPU-hours
    by_region = [RegionUsage(cols.strings[r] if r >= 0 else "", float(hours[region == r].sum()),
                             int((region == r).sum())) for r in np.unique(region).tolist()]
    by_gpu.sort(key=lambda u: (-u.gpu_hours, u.gpu_type))
    by_region.sort(key=lambda u: (-u.gpu_hours, u.region))
    # the chart's series in the table's order (most GPU-hours first), whatever ids the store gave the names
    return tuple(by_gpu), tuple(by_region), {u.gpu_type: series[u.gpu_type] for u in by_gpu if u.gpu_type in series}


def _amount_of(lines: tuple[FeeRow, ...], gpu_type: str) -> Decimal | None:
    mine = [f.amount for f in lines if f.fee_type == "charge" and f.dimensions.get("gpu_type") == gpu_type]
    return sum(mine, ZERO) if mine else None
