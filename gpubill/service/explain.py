"""What the reviewer TUI reads beyond the lifecycle: an invoice line explained down to its events,
the quarantine and what to do with it, late events, and a stored `gpubill diff` result.

Receives a store, the contract paths and the acting ``Actor`` (gpubill/service/review.py's
session holds them) and answers plain attrs values, never widgets.

- ``explain_line(store, contracts, invoice, index)``: one fee of a stored invoice document
  (draft or finalized): its units, price and the tiers the engine walked, the rounding step
  (precise amount -> amount by the plan's rule), the policy credits on the same line, the
  contract clause that priced it (``file:line:col`` with the file's text, from the loaded
  contracts) and, for a usage line, which events are behind it (``EventSelection``).
  The tiers come from rating the invoice's billing period again (the events as they stand
  now: ``rated_amount`` says what that gives, so a difference shows).
- ``events_page(store, selection, after)``: the events behind a line, ``PAGE`` at a time by
  keyset over ``(timestamp_ms, id)``; never all of them. A line is keyed as the engine keys
  it (gpubill/engine/reference/trace.py): the subscription, the charge's metric event code,
  the billing period's coverage (from the beginning of time for a recurring metric billed in
  arrears), the most specific filter the event matches, the group values and the price
  window; a late line (``adjusts_invoice_number``), the events of that invoice's period stored
  after it was finalized (its watermark); a policy credit line, the events of the jobs that
  ended with its reason. The candidates (subscription, code, time) come in keyset order from the columnar
  side store (two integer columns: the events table has no index on them, and a scan of it
  costs ~1 ms per thousand events); their rows are read by id, ``PAGE`` at a time, and routed
  in Python by the engine's own ``bucket_of`` / ``window_of``.
- Review actions the lifecycle has no one call for: ``refresh_draft`` (the draft's own billing
  period and customer), ``refused`` (why a role may not: the footer's dimmed keys).
- Quarantine: ``rejected_page``, ``resubmit`` and ``discard`` (``ingest`` permission; each
  change written to the audit log as ``quarantine.resubmitted`` / ``quarantine.discarded``).
- ``late_events``: what events stored after an invoice was finalized will do (lifecycle's
  late adjustments: the lines they add to the contract's next draft, or the credit note and
  replacing invoice a ``new revision`` contract waits for).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import attrs
import numpy as np

from gpubill.contracts.lines import dimensions_of
from gpubill.engine.calendar.coverage import coverage_of
from gpubill.engine.reference.engine import bucket_of, normalize, window_of
from gpubill.engine.spec.program import ChargeSpec, MoneyRounding
from gpubill.service import lifecycle
from gpubill.service.rating import billed_subscriptions, load_catalog, property_text, rate_billed
from gpubill.store import audit
from gpubill.store.ledger import InvoiceRow
from gpubill.store.queries import RejectedRecord
from gpubill.store.receipt import ACCEPTED
from gpubill.store.roles import Actor, Forbidden
from gpubill.store.store import now_ms as clock_ms

PAGE = 200  # events (and rejected events) read per page


class ExplainError(lifecycle.LifecycleError):
    """A line or file that cannot be explained as asked (one line)."""


# -- a line's events -------------------------------------------------------------------

@attrs.frozen
class EventSelection:
    """The events behind one usage line, as the engine routes them."""

    subscription: str
    code: str
    from_ms: int | None  # None: a recurring metric billed in arrears counts every earlier event
    to_ms: int
    charge: ChargeSpec = attrs.field(eq=False, repr=False)
    bucket: int | None  # the charge filter the line is (None: the charge's default bucket)
    group: tuple  # (key, value or None) per group-by key
    window: int | None = None  # the bucket's price window the line is (None: outside every window)
    since_id: int = 0  # only events stored after this one (a late line: after its invoice was finalized)
    end_reason: str | None = None  # a policy credit line: only the events of jobs that ended so


@attrs.frozen
class EventRow:
    id: int
    timestamp_ms: int
    transaction_id: str
    properties: dict


@attrs.frozen
class EventsPage:
    rows: tuple[EventRow, ...]
    after: tuple[int, int] | None  # the keyset to pass for the next page; None: no more


def _props(stored: dict) -> dict:
    """An event's properties as the engine compares them: as the store's columns hold them
    (``property_text``), then the reference engine's own ``normalize`` (strings, None dropped)."""
    props = {k: property_text(v) if type(v) in (float, dict, list) else v for k, v in stored.items()}
    return normalize([{"properties": props, "timestamp_ms": 0}])[0]["props"]


def _routed(sel: EventSelection, ts: int, props: dict) -> bool:
    windows = sel.charge.bucket_windows(sel.bucket)
    return (bucket_of(sel.charge, props) == sel.bucket and all(props.get(k) == v for k, v in sel.group)
            and (not windows or window_of(windows, ts) == sel.window))


def _after(store, sel: EventSelection, after: tuple[int, int] | None) -> np.ndarray:
    """The ids of the subscription's events of the code and time range, in (timestamp, id) order, past
    ``after``: from the columnar side store (one read of two integer columns, no rows)."""
    cols = store.read_columns(since_rowid=sel.since_id, codes=[sel.code], subscriptions=[sel.subscription],
                              time_from_ms=sel.from_ms, time_to_ms=sel.to_ms)
    ts, ids = cols.timestamp_ms, cols.rowid
    if sel.end_reason is not None:  # each event's job's end reason, as the engine reads it
        keep = cols.dim("end_reason") == cols.lookup(sel.end_reason)
        ts, ids = ts[keep], ids[keep]
    if after is not None:
        keep = (ts > after[0]) | ((ts == after[0]) & (ids > after[1]))
        ts, ids = ts[keep], ids[keep]
    return ids[np.lexsort((ids, ts))]


def events_page(store, sel: EventSelection, after: tuple[int, int] | None = None, limit: int = PAGE) -> EventsPage:
    """The next ``limit`` events of the line after the keyset ``after`` (oldest first): the candidates
    by (timestamp, id) from the columns, their rows read ``limit`` at a time, each routed as the engine does."""
    ids = _after(store, sel, after)
    rows: list[EventRow] = []
    for start in range(0, len(ids), limit):
        for e in store.events_by_id(ids[start:start + limit]):
            p = _props(e.properties)
            if _routed(sel, e.timestamp_ms, p):
                rows.append(EventRow(e.id, e.timestamp_ms, e.transaction_id, p))
                if len(rows) == limit:
                    return EventsPage(tuple(rows), (e.timestamp_ms, e.id))
    return EventsPage(tuple(rows), None)


# -- a line explained --------------------------------------------------------------------

@attrs.frozen
class Clause:
    """Where a line was priced, with the text of its file (None when it is not among the contracts)."""

    path: str
    line: int
    col: int
    text: str | None


@attrs.frozen
class Tier:
    number: int
    units: Decimal
    per_unit: Decimal
    flat: Decimal
    amount: Decimal


@attrs.frozen
class LineExplanation:
    invoice: InvoiceRow = attrs.field(repr=False)
    index: int
    fee: dict = attrs.field(repr=False)
    clause: Clause | None
    rounding: MoneyRounding | None  # the rule that made ``fee["amount"]`` of ``fee["precise_amount"]``
    tiers: tuple[Tier, ...]
    rated_amount: Decimal | None  # the line rated again now (None: not a rated usage line)
    credits: tuple[dict, ...]  # the policy credit fees on the same line
    events: EventSelection | None

    @property
    def name(self) -> str:
        return self.fee["item"]["name"]


def rounding_rule(r: MoneyRounding) -> str:
    """The rule that rounds a line's precise amount, in words: "half_up to 0.01"."""
    return f"{r.mode.removeprefix('ROUND_').lower()} to {r.quantum}"


def _dims(fee: dict) -> tuple:
    return tuple(sorted(fee.get("dimensions", {}).items()))


def _period_text(row: InvoiceRow) -> str:
    """A day inside the invoice's billing period: `--period DATE` bills exactly that period."""
    mid = (row.period_from_ms + row.period_to_ms) // 2
    return dt.datetime.fromtimestamp(mid / 1000, dt.timezone.utc).date().isoformat()


def _billed(catalog, row: InvoiceRow):
    for b in billed_subscriptions(catalog, _period_text(row), row.customer, handover=True):
        if b.spec.external_id == row.subscription and b.contract.name.name == row.contract:
            return b
    return None


def clause_of(sources: dict, where: str | None) -> Clause | None:
    """``file:line:col`` as a Clause; the file's text from the loaded contracts (matched by path suffix)."""
    if not where:
        return None
    path, line, col = where.rsplit(":", 2)
    text = sources.get(path)
    if text is None:
        text = next((t for p, t in sources.items() if _same_file(p, path)), None)
    return Clause(path, int(line), int(col), text)


def _same_file(a: str, b: str) -> bool:
    """Two paths of one contract file, one relative to where it was loaded from (a stored clause)."""
    pa, pb = Path(a).parts, Path(b).parts
    n = min(len(pa), len(pb))
    return pa[-n:] == pb[-n:]


def _same_clause(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    (fa, *pos_a), (fb, *pos_b) = a.rsplit(":", 2), b.rsplit(":", 2)
    return pos_a == pos_b and _same_file(fa, fb)


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _window(charge: ChargeSpec, bucket: int | None, clause: str | None) -> int | None:
    """The price window whose clause priced the line (None: the bucket's own price)."""
    return next((i for i, w in enumerate(charge.bucket_windows(bucket)) if _same_clause(w.source, clause)), None)


def _selection(b, charge: ChargeSpec, fee: dict, charges_to_ms: int) -> EventSelection | None:
    """The line of ``fee`` keyed as the engine keys it (up to the invoice's charges' end: a progressive
    invoice bills part of the period); None when no filter of the charge has its dimensions."""
    dims = _dims(fee)
    values = dict(dims)
    group = tuple((k, values.pop(k, "") or None) for k in charge.group_by)
    bucket = None
    if values:
        want = {k: frozenset(v.split("|")) for k, v in values.items()}
        bucket = next((i for i, f in enumerate(charge.filters) if f.values == want), None)
        if bucket is None:
            return None
    cov = coverage_of(b.spec)
    lo = None if charge.metric.recurring and not charge.pay_in_advance else cov.lo
    hi = min(cov.hi, charges_to_ms)
    window = _window(charge, bucket, fee.get("clause"))
    if window is not None:
        w = charge.bucket_windows(bucket)[window]
        lo, hi = max(lo if lo is not None else w.from_ms, w.from_ms), min(hi, w.to_ms - 1)
    return EventSelection(b.spec.external_id, charge.metric.event_code, lo, hi, charge, bucket, group, window)


def explain_line(store, contracts, actor: Actor, row: InvoiceRow, index: int, *,
                 loaded: tuple | None = None) -> LineExplanation:
    """Fee ``index`` of the stored invoice ``row`` explained (rates its billing period again).
    ``loaded``: ``load_catalog(contracts)`` already done (a session keeps it), else loaded here."""
    store.require(actor, "read", "invoice.explain", "invoice", row.id)
    fees = row.doc["fees"]
    if not 0 <= index < len(fees):
        raise ExplainError(f"invoice {row.number or row.id} has {len(fees)} lines, not line {index + 1}")
    fee = fees[index]
    catalog, sources = loaded or load_catalog(contracts)
    clause = clause_of(sources, fee.get("clause"))
    dims, charge_id = _dims(fee), fee["item"].get("charge")
    credits = tuple(f for f in fees if f["item"]["type"] == "credit" and f["item"].get("charge") == charge_id
                    and _dims(f) == dims and f is not fee)
    # a late line bills events of an earlier invoice's period, stored after that invoice was finalized
    late = fee.get("adjusts_invoice_number")
    priced = lifecycle.get_invoice(store, actor, late) if late else row
    b = _billed(catalog, priced) if charge_id else None
    charge = next((c for c in b.spec.charges if c.id == charge_id), None) if b is not None else None
    if charge is None:
        return LineExplanation(row, index, fee, clause, None, (), None, credits, None)
    sel = _selection(b, charge, fee, _ms(priced.doc["billing_period"]["charges_to_datetime"]))
    if late and sel is not None:
        sel = attrs.evolve(sel, since_id=priced.watermark or 0)
    if fee["item"]["kind"] == "policy" and sel is not None:  # a credit's code: <end reason>_credit
        sel = attrs.evolve(sel, end_reason=fee["item"]["code"].removesuffix("_credit"))
    lines = [ln for ln in rate_billed(store, [b]).lines
             if ln.charge_id == charge_id and dimensions_of(ln.filter, ln.group) == dims
             and ln.kind == fee["item"].get("kind") and (sel is None or ln.window == sel.window)]
    tiers = tuple(Tier(t.index + 1, t.units, t.per_unit, t.flat, t.amount) for ln in lines for t in ln.tiers)
    rated = sum((ln.amount for ln in lines), Decimal(0)) if lines else None
    rounding = lines[0].rounding if lines else charge.money_rounding
    return LineExplanation(row, index, fee, clause, rounding, tiers, rated, credits, sel)


# -- review actions --------------------------------------------------------------------

def refused(actor: Actor, permission: str) -> str | None:
    """Why ``actor`` may not take an action that needs ``permission`` (one line), None when it may."""
    return None if actor.may(permission) else str(Forbidden(actor, permission))


def refresh_draft(store, contracts, actor: Actor, row: InvoiceRow, *, now_ms: int | None = None) -> InvoiceRow:
    """Refresh the billing period of a draft for its customer (lifecycle.refresh); the invoice as it is after."""
    lifecycle.refresh(store, contracts, actor, _period_text(row), row.customer, now_ms=now_ms)
    return lifecycle.get_invoice(store, actor, row.id)


# -- quarantine ------------------------------------------------------------------------

@attrs.frozen
class Rejected:
    """A quarantined event: its id, when it came, from where, its payload (text) and why it was refused."""

    id: int
    received_ms: int
    source: str
    payload: str
    reasons: tuple[str, ...]
    status: str


def _problem(p) -> str:
    """A validation problem (a dict with field and message, as the store keeps it) as one line."""
    if isinstance(p, dict):
        return f"{p['field']}: {p['message']}" if p.get("field") else str(p.get("message", p))
    return str(p)


def _rejected(r: RejectedRecord) -> Rejected:
    reasons = tuple(_problem(x) for x in r.reasons)
    return Rejected(r.id, r.received_ms, r.source, r.raw.decode("utf-8", "replace"), reasons, r.status)


def rejected_page(store, actor: Actor, offset: int = 0, limit: int = PAGE) -> list[Rejected]:
    """Open quarantined events, oldest first."""
    store.require(actor, "read", "quarantine.list", "quarantine", "*")
    return [_rejected(r) for r in store.list_rejected(status="open", limit=limit, offset=offset)]


def _audit(store, actor: Actor, action: str, rid: int, payload: dict, now_ms: int | None) -> None:
    with store.transaction() as db:
        audit.append(db, actor, action, "quarantine", str(rid), payload, at_ms=clock_ms() if now_ms is None else now_ms)


def resubmit(store, actor: Actor, rid: int, *, now_ms: int | None = None) -> str:
    """Ingest a quarantined event again, as it was; one line saying what came of it."""
    store.require(actor, "ingest", "quarantine.resubmit", "quarantine", str(rid))
    try:
        receipt = store.resubmit(rid)
    except KeyError:
        raise ExplainError(f"no quarantined event {rid}") from None
    status = receipt.counts()
    if status["rejected"]:
        problems = "; ".join(_problem(p) for ps in receipt.problems.values() for p in ps)
        return f"event {rid} is still rejected: {problems}"
    event_id = int(receipt.event_id[0])
    _audit(store, actor, "quarantine.resubmitted", rid, {"event_id": event_id if event_id >= 0 else None}, now_ms)
    if receipt.status[0] == ACCEPTED:  # a cluster's intake has it; a worker stores it and resolves the row
        return f"event {rid} resubmitted: accepted into the intake"
    return f"event {rid} resubmitted: stored as event {event_id}"


def discard(store, actor: Actor, rid: int, *, now_ms: int | None = None) -> str:
    store.require(actor, "ingest", "quarantine.discard", "quarantine", str(rid))
    if not store.discard_rejected(rid):
        raise ExplainError(f"quarantined event {rid} is not open (resubmitted or discarded before)")
    _audit(store, actor, "quarantine.discarded", rid, {}, now_ms)
    return f"event {rid} discarded"


# -- late events -----------------------------------------------------------------------

@attrs.frozen
class LateEffect:
    """What late events do: ``invoice`` (the finalized invoice they fall in), to ``target`` (the draft
    or the credit note + replacing invoice), ``amount`` (None when waiting for an approver)."""

    contract: str
    invoice: str
    target: str
    amount: Decimal | None
    text: str


def late_events(store, contracts, actor: Actor, *, catalog=None) -> list[LateEffect]:
    """What late events do to finalized invoices. ``catalog``: the contracts already loaded (a session's)."""
    store.require(actor, "read", "late_events.list", "invoice", "*")
    catalog = catalog or load_catalog(contracts)[0]
    out = []
    for (contract, next_from), lines in sorted(lifecycle.late_adjustments(store, catalog, None, "fast").items()):
        by_invoice: dict = {}
        for ln in lines:
            by_invoice[ln.adjusts] = by_invoice.get(ln.adjusts, Decimal(0)) + ln.amount
        day = dt.datetime.fromtimestamp(next_from / 1000, dt.timezone.utc).date().isoformat()
        for number, amount in sorted(by_invoice.items()):
            out.append(LateEffect(contract, number, f"next draft (period from {day})", amount,
                                  f"{amount:+f} on the draft of the period from {day}"))
    waiting = Actor(actor.name, "viewer", actor.source)  # lists the new-revision cases without settling them
    for text in lifecycle.settle_late(store, contracts, waiting, None, now_ms=clock_ms()):
        number = text.split()[3]
        out.append(LateEffect("", number, "credit note and replacing invoice", None, text))
    return out
