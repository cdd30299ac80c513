"""`gpubill demo`: a month of a GPU cloud's billing, end to end, in a local folder.

1. load and check the example billing repository (plans, contracts, entities);
2. generate a realistic month of job and inference events for its customers,
   with duplicates, a conflicting re-send, preemptions, failures and
   malformed events;
3. ingest them into a fresh SQLite store (bad events go to quarantine);
4. rate the month with the numba engine -> draft totals;
5. the billing run (``demo_billing``): drafts, finalization past grace,
   progressive invoices, numbers;
6. ingest the late events, rate again -> the totals that would be invoiced;
   refresh the drafts, settle late events on finalized invoices (a credit
   note and a replacing invoice, or an adjustment on the next invoice),
   evaluate budget alerts, export every invoice and credit note;
7. summarize per customer, and say where each number comes from.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import attrs

from gpubill.engine.spec.program import canonical_filter
from gpubill.service import demo_billing, demo_data
from gpubill.service.report import display
from gpubill.text import escape
from gpubill.service.rating import (
    RateReport,
    ServiceError,
    billed_subscriptions,
    load_catalog,
    rate_billed,
    read_window,
    totals,
)


@attrs.frozen
class DemoResult:
    store_path: str
    period: str
    ingested: int
    duplicates: int
    conflicts: int
    rejected: int
    late: int
    draft: RateReport
    final: RateReport
    seconds: dict
    events_by_sub: dict  # subscription id -> stored events in the period
    billing: object = None  # demo_billing.BillingRun, unless invoicing was skipped


def previous_month(today: dt.date) -> str:
    first = today.replace(day=1)
    last = first - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def run_demo(contracts: str, folder: str, events: int, period: str | None, seed: int,
             open_store: Callable[[str], object], progress: Callable[[str], None] = lambda s: None,
             invoices: bool = True) -> DemoResult:
    t0 = time.perf_counter()
    period = period or previous_month(dt.date.today())
    catalog, _ = load_catalog([contracts])
    billed = billed_subscriptions(catalog, period)
    if not billed:
        raise ServiceError(f"no contract in {contracts} is active in {period}")
    t_load = time.perf_counter()

    plans = {b.contract.name.name: b.plan for b in billed}
    lo = min(b.period.from_ms for b in billed)
    hi = max(b.period.to_ms for b in billed)
    progress(f"generating {events:,} events for {len(billed)} subscriptions in {period}")
    data = demo_data.generate(catalog, [b.contract for b in billed], plans, lo, hi, events, seed)
    t_gen = time.perf_counter()

    Path(folder).mkdir(parents=True, exist_ok=True)
    store_path = str(Path(folder) / "gpubill.db")
    for suffix in ("", "-wal", "-shm"):
        Path(store_path + suffix).unlink(missing_ok=True)
    store = open_store(store_path)
    try:
        progress(f"ingesting into {store_path}")
        counts = _ingest(store, data.main)
        t_ingest = time.perf_counter()
        progress("rating the month (draft)")
        draft = RateReport(tuple(billed), rate_billed(store, billed), catalog, {})
        t_rate = time.perf_counter()
        if invoices:
            progress("billing run: drafts, progressive invoices, finalization past grace")
            first_at, unrated = demo_billing.first_run(store, contracts, period)
        t_bill = time.perf_counter()
        progress(f"{len(data.late)} late events arrive; rating again")
        late_counts = _ingest(store, data.late)
        final = RateReport(tuple(billed), rate_billed(store, billed), catalog, {})
        t_final = time.perf_counter()
        billing = None
        if invoices:
            progress("refreshing drafts, settling late events, alerts, exports")
            billing = demo_billing.second_run(store, contracts, period, folder, first_at, unrated)
        t_done = time.perf_counter()
        events_by_sub = _events_per_subscription(store, billed)
    finally:
        store.close()
    return DemoResult(
        store_path=store_path,
        period=period,
        ingested=counts["ingested"] + late_counts["ingested"],
        duplicates=counts["duplicate"],
        conflicts=counts["conflict"],
        rejected=counts["rejected"],
        late=late_counts["ingested"],
        draft=draft,
        final=final,
        events_by_sub=events_by_sub,
        billing=billing,
        seconds={
            "load": t_load - t0,
            "generate": t_gen - t_load,
            "ingest": t_ingest - t_gen,
            "rate": t_rate - t_ingest,
            "invoice": t_bill - t_rate + t_done - t_final,
            "late + re-rate": t_final - t_bill,
            "total": t_done - t0,
        },
    )


def _events_per_subscription(store, billed) -> dict[str, int]:
    import numpy as np

    cols = store.read_columns(**read_window(billed))
    ids, counts = np.unique(cols.subscription, return_counts=True)
    return {cols.strings[int(i)]: int(c) for i, c in zip(ids, counts)}


def _ingest(store, events: list[dict]) -> dict[str, int]:
    counts = {"ingested": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    batch = 5000
    for i in range(0, len(events), batch):
        receipt = store.ingest(events[i : i + batch], source="demo")
        for status, n in receipt.counts().items():
            counts[status] = counts.get(status, 0) + n
    return counts


def summary_rows(result: DemoResult) -> list[dict]:
    """One row per customer: totals and the line that explains most of the bill
    (a subscription left out of the rating says so instead, with 0 totals)."""
    draft, final = totals(result.draft), totals(result.final)
    left_out = {u.subscription: u for _, u in result.final.unrated()}
    rows = []
    for b in result.final.billed:
        sid = b.spec.external_id
        lines = [ln for ln in result.final.result.lines if ln.subscription == sid]
        top = max(lines, key=lambda ln: ln.amount, default=None)
        where = "-"
        advance: dict[str, list] = {}
        for fee in result.final.result.in_advance:
            if fee.subscription == sid:
                advance.setdefault(fee.charge_id, []).append(fee)
        adv_top = max(advance.items(), key=lambda kv: sum(f.amount for f in kv[1]), default=None)
        adv_total = sum((f.amount for f in adv_top[1]), Decimal(0)) if adv_top else Decimal(0)
        if sid in left_out:
            u = left_out[sid]
            where = f"NOT RATED ({u.charge_id}): {u.reason}"
        elif adv_top and (top is None or adv_total > top.amount):
            where = f"{adv_top[0]}: {len(adv_top[1])} fees paid in advance = {adv_total}"
        elif top is not None and top.amount > 0:
            dims = ", ".join(f"{k}={'|'.join(v)}" for k, v in canonical_filter(top.filter or {}))
            dims = ", ".join(filter(None, [dims] + [f"{k}={escape(str(v))}" for k, v in top.group.items()]))
            label = top.charge_id + (f" [{dims}]" if dims else "")
            where = f"{label}: {display(top.units, 4)} x {display(top.unit_price, 4)} = {top.amount}"
        rows.append(
            {
                "customer": b.contract.customer.display_name.value if b.contract.customer and b.contract.customer.display_name else b.contract.name.name,
                "contract": b.contract.name.name,
                "plan": b.plan.name.name,
                "currency": b.currency,
                "events": result.events_by_sub.get(sid, 0),
                "lines": len(lines),
                "draft": draft.get(sid, Decimal(0)),
                "late": final.get(sid, Decimal(0)) - draft.get(sid, Decimal(0)),
                "total": final.get(sid, Decimal(0)),
                "top_line": where,
                "rated": sid not in left_out,
            }
        )
    return rows
