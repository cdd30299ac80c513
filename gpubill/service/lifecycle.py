"""The invoice lifecycle: drafts, refresh, finalization, void, credit notes, late events.

The use cases behind `gpubill invoices`, `gpubill credit-note` and the
invoice calls of `gpubill serve`. Invoices are computed by the same code as
`gpubill invoice` (``invoicing.invoice_catalog``), with what the store
carries into them (``carried``: credit notes, voided invoices, late events);
this layer stores them (``store.ledger``), under the actor's role
(``Store.require``), each change with its audit entry.

- ``refresh``: every billing period that ends in the period given gets its
  draft (a new revision when its content changed). A period still open gets
  no draft; its progressive invoices are issued at once (they are never drafts).
- ``finalize``: refresh once more, then number and freeze. ``finalize_due``
  finalizes every draft whose grace has passed: the contract's ``invoice
  grace`` (else its entity's), and never before the contract's ``late events
  grace`` (events may still arrive on time until then).
- Late events (stored after an invoice was finalized, in its period) follow
  the contract's ``late events ... then``: ``next invoice`` (the default) adds
  the difference they make, line by line, to the contract's next draft;
  ``new revision`` issues a credit note for the whole invoice and a replacing
  invoice, finalized at once.
- ``void`` keeps a finalized invoice's number and content; what it consumed
  (coupons, prepaid credits, credit notes) is given back to the contract's
  next drafts. ``regenerate`` invoices a voided invoice's period again.
- Credit notes credit a finalized invoice (at most what is left of it); a
  ``credit`` note's balance pays the contract's later invoices (after tax,
  before prepaid credits, oldest first). ``void_credit_note`` voids what is
  left of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import attrs

from gpubill.contracts.credits import CreditNoteBalance
from gpubill.contracts.invoice import Invoice
from gpubill.contracts.lines import FeeLine
from gpubill.dsl import units
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.service.invoice_report import amount_text, invoice_json, money
from gpubill.service.invoicing import Carried, invoice_catalog, invoice_id
from gpubill.service.rating import ServiceError, load_catalog
from gpubill.store import ledger
from gpubill.store.ledger import CREDIT_NOTE_KINDS, CreditNoteRow, Draft, InvoiceRow, Numbering
from gpubill.store.roles import Actor, Forbidden
from gpubill.store.store import now_ms as clock_ms

SYSTEM = Actor("billing", "admin", "system")  # issues progressive invoices, which are never drafts
CREDIT_NOTE_REASONS = ("duplicated_charge", "product_unsatisfactory", "order_change", "order_cancellation",
                       "fraudulent_charge", "other")
ZERO = Decimal(0)


class LifecycleError(ServiceError):
    """A lifecycle request that cannot be done as asked (one line, exit 1)."""


@attrs.frozen
class Refreshed:
    """What a refresh did: the invoices it stored or left (drafts and issued progressive
    invoices), the ids whose content changed, late-event settlements, and the contracts it could not invoice."""

    invoices: tuple[InvoiceRow, ...]
    changed: tuple[str, ...]
    settled: tuple[str, ...]
    unrated: tuple[str, ...]
    open_periods: tuple[str, ...]
    late_adjustments: dict = attrs.field(factory=dict)  # (contract, period from_ms) -> late lines for that draft


# -- identity and grace --------------------------------------------------------------

def _ms(q) -> int:
    return 0 if q is None else int(q.value * units.lookup(q.unit).scale * 1000)


def due_ms(inv: Invoice) -> int:
    """When a draft is finalized by ``finalize_due``: its period's end plus the grace."""
    b = inv.billing
    c, e = b.contract, b.entity
    grace = c.invoice_grace if c.invoice_grace is not None else (e.invoice_grace if e is not None else None)
    late = c.late_events.grace if c.late_events is not None else None
    return b.period.to_ms + 1 + max(_ms(grace), _ms(late))


def numbering(inv_or_entity, when_ms: int) -> Numbering:
    """The entity's prefix and mode (Lago's default: per customer), stamped with the month of ``when_ms``."""
    e = inv_or_entity
    prefix = e.invoice_prefix.value if e is not None and e.invoice_prefix is not None else (
        (e.name.name if e is not None else "INV")[:3].upper())
    mode = e.numbering.name if e is not None and e.numbering is not None else "per_customer"
    tz = ZoneInfo(e.timezone.value) if e is not None and e.timezone is not None else dt.timezone.utc
    day = dt.datetime.fromtimestamp(when_ms / 1000, tz)
    return Numbering(prefix, mode, day.strftime("%Y%m"))


def _today(e, when_ms: int) -> str:
    tz = ZoneInfo(e.timezone.value) if e is not None and e.timezone is not None else dt.timezone.utc
    return dt.datetime.fromtimestamp(when_ms / 1000, tz).date().isoformat()


def contracts_digest(sources: dict) -> str:
    """SHA-256 over each contract file's path and content: which .bill files priced a revision."""
    h = hashlib.sha256()
    for path in sorted(sources):
        h.update(path.encode() + b"\0" + hashlib.sha256(sources[path].encode()).digest())
    return h.hexdigest()


def _draft(inv: Invoice, doc: dict, replaces: str | None = None) -> Draft:
    b = inv.billing
    c = b.contract
    return Draft(invoice_id(inv) if replaces is None else _replacement_id(replaces), c.entity.name if c.entity else "",
                 c.customer.id.value, c.name.name, b.subscription_id, inv.invoice_type, b.period.from_ms,
                 b.period.to_ms, b.period.label, inv.currency, due_ms(inv), doc, replaces)


def _replacement_id(replaced: str) -> str:
    return "inv_" + hashlib.sha256(f"replaces/{replaced}".encode()).hexdigest()[:16]


# -- reads ---------------------------------------------------------------------------

def list_invoices(store, actor: Actor, **filters) -> list[InvoiceRow]:
    store.require(actor, "read", "invoice.list", "invoice", "*")
    return ledger.list_invoices(store._read(), **filters)


def get_invoice(store, actor: Actor, id_or_number: str) -> InvoiceRow:
    store.require(actor, "read", "invoice.show", "invoice", id_or_number)
    row = ledger.get_invoice(store._read(), id_or_number)
    if row is None:
        raise LifecycleError(f"no invoice {id_or_number!r} in this store (see `gpubill invoices list`)")
    return row


def list_credit_notes(store, actor: Actor, **filters) -> list[CreditNoteRow]:
    store.require(actor, "read", "credit_note.list", "credit_note", "*")
    return ledger.credit_notes(store._read(), **filters)


def get_credit_note(store, actor: Actor, id_or_number: str) -> CreditNoteRow:
    store.require(actor, "read", "credit_note.show", "credit_note", id_or_number)
    cn = ledger.get_credit_note(store._read(), id_or_number)
    if cn is None:
        raise LifecycleError(f"no credit note {id_or_number!r} in this store")
    return cn


def revisions(store, actor: Actor, invoice: InvoiceRow) -> list[dict]:
    store.require(actor, "read", "invoice.show", "invoice", invoice.id)
    return ledger.revisions(store._read(), invoice.id)


# -- refresh -------------------------------------------------------------------------

def refresh(store, contracts: Sequence[str], actor: Actor, period_text: str, customer: str | None = None, *,
            now_ms: int | None = None, engine: str = "fast") -> Refreshed:
    """Store the drafts of every billing period ending in ``period_text`` (a new revision where
    the content changed), issue the progressive invoices due by now, settle late events."""
    store.require(actor, "refresh", "invoice.refresh", "period", period_text)
    now = clock_ms() if now_ms is None else now_ms
    watermark = store.event_watermark()
    catalog, sources = load_catalog(contracts)
    settled = settle_late(store, contracts, actor, customer, now_ms=now, engine=engine)
    carry = carried(store, catalog, customer, engine=engine)
    report = invoice_catalog(store, catalog, period_text, customer, engine, progressive=True, carried=carry,
                             sources=sources)
    digest = contracts_digest(sources)
    rows, changed, open_ = [], [], []
    for inv in report.invoices:
        if inv.invoice_type == "subscription" and inv.billing.period.to_ms >= now:
            open_.append(f"{inv.billing.contract.name.name} {inv.billing.period.label}")
            continue
        if inv.invoice_type != "subscription" and inv.to_ms >= now:
            continue
        row, did = _store(store, inv, actor, now, watermark, digest)
        rows.append(row)
        if did:
            changed.append(row.id)
    return Refreshed(tuple(rows), tuple(changed), tuple(settled), report.unrated, tuple(open_), carry.adjustments)


def _store(store, inv: Invoice, actor: Actor, now: int, watermark: int, digest: str) -> tuple[InvoiceRow, bool]:
    """A draft revision; a progressive invoice is finalized at once (by the system: never a draft)."""
    d = _draft(inv, invoice_json(inv))
    with store.transaction() as db:
        row, did = ledger.put_draft(db, d, actor, now_ms=now, watermark=watermark, contracts_digest=digest)
        if inv.invoice_type != "subscription" and row.status == "draft":
            row = _finalize_row(db, row, d.doc, inv.billing.entity, SYSTEM, now)
            did = True
    return row, did


def _finalize_row(db, row: InvoiceRow, doc: dict, entity, actor: Actor, now: int) -> InvoiceRow:
    row = ledger.finalize(db, row, doc, numbering(entity, now), actor, now_ms=now, issuing_date=_today(entity, now))
    uses = [(c["item"]["code"], Decimal(c["amount"])) for c in row.doc.get("credits", ())
            if c["item"]["type"] == "credit_note"]
    ledger.record_uses(db, row.id, uses)
    return row


# -- what earlier invoices carry into a recomputation ---------------------------------

def carried(store, catalog, customer: str | None, *, engine: str = "fast",
            late: bool = True) -> Carried:
    """What the store carries into the drafts it recomputes (of ``customer``'s contracts, or all): each
    contract's credit notes, the invoices voided, and (``late``) the late-event lines its next draft bills."""
    db = store._read()
    notes: dict = {}
    mine = [cn for cn in ledger.credit_notes(db, customer=customer) if cn.kind == "credit"]
    # a voided note's credit: what finalized invoices used of it before
    used = ledger.credit_uses(db, [cn.id for cn in mine if cn.voided_ms is not None])
    for cn in mine:
        inv = ledger.get_invoice(db, cn.invoice_id)
        day = dt.date.fromisoformat(cn.doc["issuing_date"])
        credit = cn.total if cn.voided_ms is None else used.get(cn.id, ZERO)
        notes.setdefault(inv.contract, []).append(CreditNoteBalance(cn.number, credit, day))
    adjustments = late_adjustments(store, catalog, customer, engine) if late else {}
    return Carried({k: tuple(v) for k, v in notes.items()}, adjustments, voided_invoices(db, customer))


def voided_invoices(db, customer: str | None = None) -> frozenset:
    """The ``invoice_id`` of each invoice (of ``customer``) whose latest document is voided: voided and not
    replaced, or replaced (late events) by documents the last of which was voided."""
    where, args = ("customer = ? AND ", (customer,)) if customer is not None else ("", ())
    voided = [r[0] for r in db.execute(f"SELECT id FROM invoices WHERE {where}status = 'voided'", args)]
    if not voided:  # (the usual case: one index lookup)
        return frozenset()
    replaced = ledger.replaced(db, customer)
    return frozenset(first_document(db, ledger.get_invoice(db, i)) for i in voided if i not in replaced)


def _late_candidates(store, catalog, customer: str | None, policy: str) -> list[InvoiceRow]:
    """Finalized subscription invoices, not replaced, whose contract follows ``policy``, with late events."""
    db = store._read()
    replaced = ledger.replaced(db, customer)
    rows = [r for r in ledger.list_invoices(db, status="finalized", customer=customer, limit=1 << 30)
            if r.invoice_type == "subscription" and r.id not in replaced
            and r.contract in catalog.contracts and _policy(catalog.contracts[r.contract]) == policy]
    if not rows:
        return []
    # One column read of everything stored after the oldest watermark, for these subscriptions only.
    cols = store.read_columns(since_rowid=min(r.watermark or 0 for r in rows),
                              subscriptions=sorted({r.subscription for r in rows}))
    return [r for r in rows if _has_late(cols, r)]


def _has_late(cols, r: InvoiceRow) -> bool:
    """Whether events stored after the invoice's watermark fall in its subscription's period."""
    sid = cols.lookup(r.subscription)
    return bool(((cols.subscription == sid) & (cols.rowid > (r.watermark or 0)) & (cols.timestamp_ms >= r.period_from_ms)
                 & (cols.timestamp_ms <= r.period_to_ms)).any()) if sid >= 0 else False


def _policy(contract) -> str:
    le = contract.late_events
    return (le.target if le is not None and le.target else "next_invoice")


def recomputed(store, catalog, rows: list[InvoiceRow], engine: str, carry: Carried) -> dict:
    """Stored invoices' periods as the events stand now: row id -> Invoice (absent when the contracts
    no longer bill it). One recomputation per period (for one customer, or all when several)."""
    out: dict = {}
    db = store._read()
    for mid, group in _by_period(rows).items():
        customers = {r.customer for r in group}
        report = invoice_catalog(store, catalog, mid, customers.pop() if len(customers) == 1 else None, engine,
                                 progressive=True, carried=carry)
        fresh = {invoice_id(i): i for i in report.invoices}
        for r in group:
            inv = fresh.get(first_document(db, r))
            if inv is not None:
                out[r.id] = inv
    return out


def first_document(db, row: InvoiceRow) -> str:
    """The ``invoice_id`` a stored document is of: its own, or for a replacing invoice (late events), that of the
    first document it replaces (the one the period's invoice was stored as)."""
    while row.replaces is not None:
        row = ledger.get_invoice(db, row.replaces)
    return row.id


def late_adjustments(store, catalog, customer: str | None, engine: str) -> dict:
    """(contract, next period's from_ms) -> the lines late events add to the contract's next draft."""
    out: dict = {}
    db = store._read()
    rows = _late_candidates(store, catalog, customer, "next_invoice")
    fresh = recomputed(store, catalog, rows, engine, carried(store, catalog, None, late=False))
    for row in rows:
        now = fresh.get(row.id)
        if now is None:
            continue
        billed = [f for r in ledger.list_invoices(db, contract=row.contract, limit=1 << 30) if r.status == "finalized"
                  for f in r.doc["fees"] if f.get("adjusts_invoice_number") == row.number]
        lines = _delta_lines(row, invoice_json(now)["fees"], row.doc["fees"] + billed, now)
        if lines:
            key = (row.contract, row.period_to_ms + 1)
            out[key] = out.get(key, ()) + tuple(lines)
    return out


def _fee_key(f: dict) -> tuple:
    item = f["item"]
    return (item["type"], item["code"], item.get("charge"), tuple(sorted(f.get("dimensions", {}).items())))


def _sums(fees: list[dict]) -> dict:
    out: dict = {}
    for f in fees:
        units_, amount, n = out.get(_fee_key(f), (ZERO, ZERO, 0))
        out[_fee_key(f)] = (units_ + Decimal(f["units"] or 0), amount + Decimal(f["amount"]), n + f["events_count"])
    return out


def _delta_lines(row: InvoiceRow, now_fees: list[dict], billed: list[dict], now: Invoice) -> list[FeeLine]:
    """Per line identity: what the events say now minus what was billed (frozen invoice + earlier adjustments)."""
    now_sums, was = _sums(now_fees), _sums(billed)
    by_key = {_fee_key(f): f for f in now_fees + billed}
    lines = []
    for key in sorted(set(now_sums) | set(was), key=repr):
        u1, a1, n1 = now_sums.get(key, (ZERO, ZERO, 0))
        u0, a0, n0 = was.get(key, (ZERO, ZERO, 0))
        if a1 == a0:
            continue
        f = by_key[key]
        lines.append(FeeLine(
            f["item"]["type"], f["item"]["code"], f"late events: {f['item']['name']}",
            f"{max(n1 - n0, 0)} events of {row.period_label} arrived after invoice {row.number} was finalized",
            u1 - u0, None, a1 - a0, a1 - a0, row.period_from_ms, row.period_to_ms, f["item"].get("charge"),
            tuple(sorted(f.get("dimensions", {}).items())), f.get("clause"), max(n1 - n0, 0), False, "late",
            adjusts=row.number))
    return lines


def settle_late(store, contracts, actor: Actor, customer: str | None, *, now_ms: int, engine: str = "fast") -> list[str]:
    """Contracts whose policy is ``new revision``: a credit note for the whole late invoice and a
    replacing invoice, finalized at once. Needs an approver; for anyone else it waits (said in the result)."""
    catalog, sources = load_catalog(contracts)
    out = []
    rows = _late_candidates(store, catalog, customer, "new_revision")
    if not actor.may("credit_note") or not actor.may("finalize"):
        return [f"late events on {r.number} wait for an approver (policy: credit note and replacing invoice)"
                for r in rows]
    fresh = recomputed(store, catalog, rows, engine, carried(store, catalog, None, late=False))
    for row in rows:
        now = fresh.get(row.id)
        if now is None:
            continue
        out.append(_replace(store, row, now, actor, now_ms, contracts_digest(sources)))
    return out


def _replace(store, row: InvoiceRow, now: Invoice, actor: Actor, now_ms: int, digest: str) -> str:
    doc = invoice_json(now)
    doc["replaces_invoice_number"] = row.number
    d = _draft(now, doc, replaces=row.id)
    with store.transaction() as db:
        left = Decimal(row.doc["total_amount"]) - ledger.credited_so_far(db, row.id)
        spread = _spread(row, fee_rooms(row, ledger.credit_notes(db, invoice_id=row.id)), left)
        cn = ledger.add_credit_note(db, row, _note_doc(row, spread, left, "credit", "other",
                                                      f"replaced by a new invoice: late events of {row.period_label}",
                                                      now_ms), "credit", left, actor, now_ms=now_ms)
        new, _ = ledger.put_draft(db, d, actor, now_ms=now_ms, watermark=store.event_watermark(db), contracts_digest=digest)
        new = _finalize_row(db, new, d.doc, now.billing.entity, actor, now_ms)
    return f"{row.number}: credit note {cn.number} ({cn.total} {row.currency}) and replacing invoice {new.number}"


# -- finalize, void --------------------------------------------------------------------

def finalize(store, contracts: Sequence[str], actor: Actor, id_or_number: str, *, now_ms: int | None = None,
             engine: str = "fast") -> InvoiceRow:
    """Refresh the draft once more, then number and freeze it."""
    store.require(actor, "finalize", "invoice.finalize", "invoice", id_or_number)
    row = get_invoice(store, actor, id_or_number)
    done = _finalize_all(store, contracts, actor, [row], now_ms, engine) if row.status == "draft" else []
    if not done:  # finalized before, or meanwhile by another process
        row = get_invoice(store, actor, id_or_number)
        raise LifecycleError(f"invoice {row.number} is already {row.status}: a finalized invoice never changes")
    return done[0]


def finalize_due(store, contracts: Sequence[str], actor: Actor, *, now_ms: int | None = None,
                 engine: str = "fast") -> list[InvoiceRow]:
    """Finalize every draft whose grace has passed."""
    store.require(actor, "finalize", "invoice.finalize_due", "invoice", "*")
    now = clock_ms() if now_ms is None else now_ms
    due = ledger.list_invoices(store._read(), status="draft", due_before_ms=now, limit=1 << 30)
    return _finalize_all(store, contracts, actor, due, now, engine)


def _finalize_all(store, contracts, actor: Actor, rows: list[InvoiceRow], now_ms, engine: str) -> list[InvoiceRow]:
    now = clock_ms() if now_ms is None else now_ms
    watermark = store.event_watermark()
    catalog, sources = load_catalog(contracts)
    digest = contracts_digest(sources)
    customers = {r.customer for r in rows}
    carry = carried(store, catalog, customers.pop() if len(customers) == 1 else None, engine=engine)
    fresh = recomputed(store, catalog, rows, engine, carry)
    out = []
    for row in rows:
        inv = fresh.get(row.id)
        if inv is None:
            raise LifecycleError(f"invoice {row.id} ({row.contract} {row.period_label}) no longer comes out of the "
                                 "contracts: was the contract changed or removed? refresh the period first")
        d = _draft(inv, invoice_json(inv))
        with store.transaction() as db:
            draft, _ = ledger.put_draft(db, d, actor, now_ms=now, watermark=watermark, contracts_digest=digest)
            if draft.status == "draft":  # else another process finalized it meanwhile
                out.append(_finalize_row(db, draft, d.doc, inv.billing.entity, actor, now))
    return out


def _by_period(rows: list[InvoiceRow]) -> dict:
    """Invoices grouped by a date inside their period (as `--period` reads it): one recomputation each."""
    out: dict = {}
    for r in rows:
        mid = dt.datetime.fromtimestamp((r.period_from_ms + r.period_to_ms) // 2000, dt.timezone.utc).date()
        out.setdefault(mid.isoformat(), []).append(r)
    return out


def peek_number(store, contracts: Sequence[str], id_or_number: str, actor: Actor, *, now_ms: int | None = None) -> str:
    """The number finalizing the draft would take now (for a confirmation)."""
    row = get_invoice(store, actor, id_or_number)
    catalog, _ = load_catalog(contracts)
    c = catalog.contracts.get(row.contract)
    entity = catalog.entities.get(row.entity) if c is not None else None
    with store.transaction() as db:
        return ledger.peek_number(db, row, numbering(entity, clock_ms() if now_ms is None else now_ms))


GIVEN_BACK = {"coupon": "coupon", "wallet": "prepaid credit", "credit_note": "credit note"}  # credit type -> word


def given_back_text(row: InvoiceRow) -> str:
    """What voiding the invoice gives back to the contract's next invoices (its coupons, prepaid credits and
    credit notes: ``invoicing.given_back``), in words; "" when it consumed none."""
    used = [f"{GIVEN_BACK[c['item']['type']]} {c['item']['code']} {c['amount']}"
            for c in row.doc.get("credits", ()) if c["item"]["type"] in GIVEN_BACK]
    return f"gives back to the next invoices: {', '.join(used)} {row.currency}" if used else ""


def void(store, actor: Actor, id_or_number: str, reason: str, *, now_ms: int | None = None) -> InvoiceRow:
    store.require(actor, "void", "invoice.void", "invoice", id_or_number)
    row = get_invoice(store, actor, id_or_number)
    try:
        with store.transaction() as db:
            return ledger.void(db, row, actor, reason, now_ms=clock_ms() if now_ms is None else now_ms)
    except ValueError as e:
        raise LifecycleError(str(e)) from None


def regenerate(store, contracts: Sequence[str], actor: Actor, id_or_number: str, *, now_ms: int | None = None,
               engine: str = "fast") -> InvoiceRow:
    """A voided invoice's period invoiced again (Lago's regenerate): priced from the events as they are now, its
    coupons, credits and credit notes applied again, finalized at once with a new number (``replaces`` it)."""
    store.require(actor, "finalize", "invoice.regenerate", "invoice", id_or_number)
    row = get_invoice(store, actor, id_or_number)
    if row.status != "voided":
        raise LifecycleError(f"invoice {row.number or row.id} is {row.status}: only a voided invoice is regenerated")
    now = clock_ms() if now_ms is None else now_ms
    catalog, sources = load_catalog(contracts)
    carry = carried(store, catalog, row.customer, engine=engine)
    standing = attrs.evolve(carry, voided=carry.voided - {first_document(store._read(), row)})  # it stands again
    inv = recomputed(store, catalog, [row], engine, standing).get(row.id)
    if inv is None:
        raise LifecycleError(f"invoice {row.number} ({row.contract} {row.period_label}) no longer comes out of "
                             "the contracts: was the contract changed or removed?")
    doc = invoice_json(inv)
    doc["replaces_invoice_number"] = row.number
    d = _draft(inv, doc, replaces=row.id)
    with store.transaction() as db:
        again = db.execute("SELECT number FROM invoices WHERE replaces = ?", (row.id,)).fetchone()
        if again is not None:
            raise LifecycleError(f"invoice {row.number} was regenerated before, as {again[0]}")
        new, _ = ledger.put_draft(db, d, actor, now_ms=now, watermark=store.event_watermark(db),
                                  contracts_digest=contracts_digest(sources))
        return _finalize_row(db, new, d.doc, inv.billing.entity, actor, now)


# -- credit notes ----------------------------------------------------------------------

def credit_note(store, actor: Actor, invoice: str, *, kind: str = "credit", amount: Decimal | None = None,
                percent: Decimal | None = None, items: Sequence[tuple[int, Decimal]] | None = None,
                reason: str = "other", description: str = "", now_ms: int | None = None) -> CreditNoteRow:
    """Credit part of a finalized invoice: ``amount`` (tax included) or ``percent`` of its total, spread over
    its fees in proportion to what each can still be credited; or ``items`` (fee index, amount before tax,
    after its coupons' share), each at most what its fee can still be credited, for what they add up to with
    their taxes (an ``amount`` given, as Lago's API asks, must be that within one minor unit). At most what is
    left of the invoice after earlier credit notes."""
    store.require(actor, "credit_note", "credit_note.create", "invoice", invoice)
    _check_note_request(kind, reason, amount, percent, items)
    now = clock_ms() if now_ms is None else now_ms
    row = get_invoice(store, actor, invoice)
    if row.status != "finalized":
        raise LifecycleError(f"invoice {row.number or row.id} is {row.status}: credit notes are for finalized invoices")
    total = Decimal(row.doc["sub_total_including_taxes_amount"])
    with store.transaction() as db:
        left = total - ledger.credited_so_far(db, row.id)
        rooms = fee_rooms(row, ledger.credit_notes(db, invoice_id=row.id))
        if items is not None:
            credited, value = _itemized(row, rooms, items, None if amount is None else _minor(row, amount))
        else:
            credited, value = None, _minor(row, total * percent / 100 if percent is not None else amount)
        if value <= 0 or value > left:
            raise LifecycleError(f"a credit note on {row.number} must be above 0 and at most {left} {row.currency} "
                                 f"(what is left of it), not {value}")
        doc = _note_doc(row, credited or _spread(row, rooms, value), value, kind, reason, description, now)
        return ledger.add_credit_note(db, row, doc, kind, value, actor, now_ms=now)


def _check_note_request(kind: str, reason: str, amount, percent, items) -> None:
    if kind not in CREDIT_NOTE_KINDS:
        raise LifecycleError(f"a credit note is a credit, a refund or an offset, not {kind!r}")
    if reason not in CREDIT_NOTE_REASONS:
        raise LifecycleError(f"reason must be one of {', '.join(CREDIT_NOTE_REASONS)}")
    if items is not None:
        if percent is not None or not items:
            raise LifecycleError("a credit note by items takes at least one item, and no percent")
    elif (amount is None) == (percent is None):
        raise LifecycleError("a credit note needs an amount or a percent (one of them)")


def parse_item(text: str) -> tuple[int, Decimal]:
    """``"N=AMOUNT"``: line N of an invoice (numbered from 1, as `invoices show` and the TUI number them) credited
    by AMOUNT before tax, as (its fee index, the amount); ValueError saying what it should be otherwise."""
    line, sep, amount = text.strip().partition("=")
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        value = None
    if not sep or not line.strip().isdigit() or int(line) < 1 or value is None or not value.is_finite() or value <= 0:
        raise ValueError(f"a line item is N=AMOUNT, with N a line number from 1 and AMOUNT above 0 before tax, "
                         f"not {text!r}")
    return int(line) - 1, value


def fee_id(invoice_id: str, index: int) -> str:
    """The id of an invoice's fee (Lago's fee ``lago_id``, what a credit note's items name), by its index."""
    return "fee_" + hashlib.sha256(f"{invoice_id}/{index}".encode()).hexdigest()[:16]


@attrs.frozen
class FeeRoom:
    """What one fee of an invoice can still be credited: before tax (after its coupons' and progressive credit's
    share, as its taxes were computed on it), and the rate of its taxes."""

    left: Decimal
    tax_rate: Decimal  # its taxes / its taxable amount (0 when untaxed)


def fee_rooms(row: InvoiceRow, notes: Sequence[CreditNoteRow]) -> list[FeeRoom]:
    """Each fee's room (``FeeRoom``), by fee index, after the credit notes ``notes`` issued on the invoice."""
    credited: dict[int, Decimal] = {}
    for cn in notes:
        for it in cn.doc["items"]:
            credited[it["fee_index"]] = credited.get(it["fee_index"], ZERO) + Decimal(it["amount"])
    out = []
    for i, f in enumerate(row.doc["fees"]):
        taxable = (Decimal(f["amount"]) - Decimal(f["precise_coupons_amount"] or 0)
                   - Decimal(f["precise_progressive_credit_amount"] or 0))
        rate = Decimal(f.get("taxes_precise_amount") or 0) / taxable if taxable else ZERO
        out.append(FeeRoom(taxable - credited.get(i, ZERO), rate))
    return out


def _spread(row: InvoiceRow, rooms: list[FeeRoom], value: Decimal) -> list[tuple[int, Decimal]]:
    """``value`` (tax included) over the fees in proportion to what each can still be credited, tax included."""
    base = sum((r.left * (1 + r.tax_rate) for r in rooms if r.left > 0), ZERO)
    share = value / base if base else ZERO
    return [(i, _minor(row, r.left * share)) for i, r in enumerate(rooms) if r.left > 0]


def _itemized(row: InvoiceRow, rooms: list[FeeRoom], items: Sequence[tuple[int, Decimal]],
              value: Decimal | None) -> tuple[list[tuple[int, Decimal]], Decimal]:
    """(the items as given, the note's amount), checked (a fee named as its line, numbered from 1): each fee
    known, its amount above 0 and within the fee's room; the amount is what they add up to with their taxes,
    or ``value`` when given, which must be that within one minor unit (Lago's does_not_match_item_amounts)."""
    unit = Decimal(1).scaleb(Decimal(row.doc["total_amount"]).as_tuple().exponent)
    asked: dict[int, Decimal] = {}
    for index, amount in items:
        if not 0 <= index < len(rooms):
            raise LifecycleError(f"invoice {row.number} has no line {index + 1} (it has {len(rooms)})")
        asked[index] = asked.get(index, ZERO) + _minor(row, amount)
    for index, amount in asked.items():
        if amount <= 0 or amount > rooms[index].left:
            raise LifecycleError(f"line {index + 1} of {row.number} can be credited above 0 and at most "
                                 f"{_minor(row, rooms[index].left)} {row.currency} before tax, not {amount}")
    due = sum(asked.values(), ZERO) + _minor(row, sum((a * rooms[i].tax_rate for i, a in asked.items()), ZERO))
    if value is not None and abs(due - value) > unit:
        raise LifecycleError(f"the items add up to {due} {row.currency} with their taxes, not {value}")
    return sorted(asked.items()), due if value is None else value


def void_credit_note(store, actor: Actor, id_or_number: str, reason: str, *,
                     now_ms: int | None = None) -> tuple[CreditNoteRow, Decimal]:
    """Void the credit left on a credit note: (the note, the credit voided)."""
    store.require(actor, "credit_note", "credit_note.void", "credit_note", id_or_number)
    cn = get_credit_note(store, actor, id_or_number)
    try:
        with store.transaction() as db:
            cn = ledger.get_credit_note(db, cn.id)  # as it is now: another process may have voided it meanwhile
            left = ledger.credit_left(db, cn)
            voided = ledger.void_credit_note(db, cn, actor, reason, now_ms=clock_ms() if now_ms is None else now_ms)
            return voided, left
    except ValueError as e:
        raise LifecycleError(str(e)) from None


def _minor(row: InvoiceRow, value: Decimal) -> Decimal:
    """Rounded half up to the invoice's own precision (its total's decimals: the currency's minor unit)."""
    exp = Decimal(row.doc["total_amount"]).as_tuple().exponent
    return round_amount(Decimal(value), MoneyRounding(quantum=Decimal(1).scaleb(exp)))


def _note_doc(row: InvoiceRow, credited: list[tuple[int, Decimal]], value: Decimal, kind: str, reason: str,
              description: str, now: int) -> dict:
    """Lago's credit-note object: its items (fee index, amount before tax), and ``value`` (tax included)."""
    doc = row.doc
    cur = row.currency
    items = []
    for i, amount in credited:
        if amount:
            item = {"fee_index": i, "fee": doc["fees"][i]}
            money(item, "amount", amount, cur)
            items.append(item)
    sub = sum((Decimal(it["amount"]) for it in items), ZERO)
    out = {"issuing_date": _day(now), "currency": cur, "reason": reason, "description": description, "kind": kind,
           "invoice_type": doc.get("invoice_type"), "customer": doc.get("customer"),
           "billing_entity": doc.get("billing_entity"), "credit_status": "available" if kind == "credit" else None}
    for k in CREDIT_NOTE_KINDS:
        money(out, f"{k}_amount", value if k == kind else ZERO, cur)
    money(out, "sub_total_excluding_taxes_amount", sub, cur)
    money(out, "taxes_amount", value - sub, cur)
    money(out, "total_amount", value, cur)
    out["items"] = items
    out["applied_taxes"] = _note_taxes(row, doc.get("applied_taxes", ()), sub, value - sub)
    return out


def _note_taxes(row: InvoiceRow, taxes, base: Decimal, total: Decimal) -> list[dict]:
    """Each tax on the credited base, rounded; the last takes the remainder so that they add up to the
    note's tax (its total less its items: the amount asked for includes tax)."""
    amounts = [_minor(row, base * Decimal(t["tax_rate"]) / 100) for t in taxes]
    if amounts:
        amounts[-1] += total - sum(amounts, ZERO)
    return [{"tax_name": t["tax_name"], "tax_rate": t["tax_rate"], "base_amount": amount_text(base, row.currency),
             "amount": amount_text(a, row.currency)} for t, a in zip(taxes, amounts)]


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date().isoformat()


def credit_left(store, cn: CreditNoteRow) -> Decimal:
    return ledger.credit_left(store._read(), cn)


__all__ = ["Actor", "Forbidden", "LifecycleError", "Refreshed", "refresh", "finalize", "finalize_due", "void",
           "credit_note", "list_invoices", "get_invoice", "list_credit_notes", "get_credit_note", "revisions",
           "peek_number", "credit_left", "given_back_text", "void_credit_note", "fee_id", "regenerate", "parse_item",
           "settle_late", "late_adjustments", "SYSTEM", "CREDIT_NOTE_REASONS"]
