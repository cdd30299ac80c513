"""The data of one customer's portal pages: plain rows, never HTML (``gpubill/server/portal`` renders them).

Receives the server's store (or a store path: opened read-only) and the
contract paths; ``Portal`` answers, for ONE customer at a time, what the
pages show: who the customer is, its usage in a period (``activity``), where
it stands against its terms now (``standing``), its stored invoices and the
live draft of the period containing now, each invoice itemized and exported,
the alerts that fired, and what a planned job would add (``Estimator``).
Nothing of another customer is ever answered: an invoice or export of
another customer is None, exactly as one that does not exist. Only reads.

A customer is the ``customer "id"`` of its contracts, else a contract's name
(``rating.customer_of``). Invoice amounts are computed by the code behind
``gpubill invoice`` (``invoicing.invoice_catalog`` with what the store
carries into a draft: ``lifecycle.carried``), so the pages match it, and the
stored drafts, to the cent.

Freshness and speed. The contracts are compiled once (``warm``, or the
first request), and again, in the background, when a .bill file under the
contract paths changed (looked at, off the request path, at most every
``RECHECK_S``; ``reload_contracts`` looks now). A customer's usage and
standing are kept (``kept.KeptValues``) until an event of the customer's
subscriptions, its stored invoices, a credit note or an alert changes
them, then recomputed in
the background while a kept value younger than ``kept.STALE_MS`` is still
answered (an older one: the request waits for the recomputation). Invoices of a customer are computed for its
contracts only (a catalog of just them). Thread-safe: the pages come from a
thread pool; the store gives each thread its own SQLite reader, and the one
``Estimator`` (it keeps each period's baseline) is used under a lock.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import attrs

from gpubill.engine.spec.subscription import timezone_of
from gpubill.service.alerts import list_alerts
from gpubill.service.estimate import (
    OPTION_OF, Estimate, Estimator, Job, LineChange, Totals, now_ms as clock_ms, summary,
)
from gpubill.service.events import open_event_store
from gpubill.service.explain import events_page, explain_line, rounding_rule
from gpubill.service.exports import NOTE_FORMATS, ExportError, credit_note_file, invoice_file, stored_invoice
from gpubill.service.invoicing import invoice_catalog
from gpubill.service.lifecycle import carried
from gpubill.service.portal.activity import FeeRow, Usage, fee_rows, usage_of
from gpubill.service.portal.standing import Standing, standing_of, stored_invoices
from gpubill.service.rating import ServiceError, customer_of
from gpubill.service.portal.kept import KeptValues, bill_files_stamp
from gpubill.service.review import InvoiceSummary, NoteSummary, _notes, _plan_label, _summary
from gpubill.store import ledger
from gpubill.store.roles import Actor

PRICED_KEPT = 256  # customers' invoices kept for the next request under the same store state
RECHECK_S = 2.0  # how often the .bill files' modification times are looked at
CURRENT = "current"  # the invoice ref of the live draft of the period containing now ("current:SUBSCRIPTION")
EXIT_USAGE = 2
MEDIA = {"pdf": ("pdf", "application/pdf"), "ubl": ("xml", "application/xml"),
         "csv": ("csv", "text/csv; charset=utf-8"), "json": ("json", "application/json")}
DRAFT_FORMATS = ("pdf", "csv", "json")  # a draft is never sent as UBL (exports refuses it)
FINAL_FORMATS = ("pdf", "ubl", "csv", "json")
FIELD_OF = {"gpu_type": "gpu_type", "region": "region", "availability_class": "class"}  # the estimate form's fields
VISITOR = Actor("portal", "viewer", "portal")  # who reads for a page (the server checked the link and its customer)
TOTALS = ("fees_amount", "progressive_billing_credit_amount", "coupons_amount", "sub_total_excluding_taxes_amount",
          "taxes_amount", "credit_notes_amount", "prepaid_credit_amount", "total_amount")


class UnknownCustomer(ServiceError, LookupError):
    """No contract bills this customer (one line)."""


# ---------------------------------------------------------------- rows


@attrs.frozen
class SubscriptionInfo:
    contract: str
    subscription: str
    currency: str
    entity: str  # the entity's display name, else its code
    entity_code: str
    plan: str  # name@version
    country: str | None  # the entity's country (ISO 3166 alpha-2): the locale amounts are written in


@attrs.frozen
class Customer:
    id: str  # the external id (or the contract's name when it names no customer)
    name: str  # display name, else the id
    subscriptions: tuple[SubscriptionInfo, ...]  # in contract-name order


@attrs.frozen
class InvoiceList:
    invoices: tuple[InvoiceSummary, ...]  # the stored invoices of the customer's contracts, newest first
    credit_notes: tuple[NoteSummary, ...]  # on those invoices, newest first


@attrs.frozen
class CreditRow:
    """A credit the invoice applies: a discount (coupon), a progressive invoice, a credit note, a prepaid credit."""

    name: str
    kind: str  # the document's item type: coupon | invoice | credit_note | wallet
    amount: Decimal
    before_taxes: bool


@attrs.frozen
class TaxRow:
    name: str
    rate: str  # percent, as written
    base: Decimal  # the fees it taxes
    amount: Decimal


@attrs.frozen
class InvoiceView:
    ref: str  # what the page links to: the stored invoice's number (else id), or "current[:SUBSCRIPTION]"
    id: str | None  # the stored invoice's id (None: the live draft)
    number: str  # its number (a draft: PREFIX-DRAFT)
    status: str  # draft | finalized | voided, or "live" (the current period's draft, computed now)
    invoice_type: str  # subscription | progressive_billing
    subscription: str
    contract: str
    currency: str
    period_label: str
    issuing_date: str
    lines: tuple[FeeRow, ...]
    credits: tuple[CreditRow, ...]
    taxes: tuple[TaxRow, ...]
    totals: dict  # TOTALS name -> Decimal
    downloads: tuple[str, ...]  # the formats ``export`` gives for it
    doc: dict = attrs.field(eq=False, repr=False)  # the document (docs/invoice-json.md)


@attrs.frozen
class LineView:
    """One line of a stored invoice explained down to its events (``explain.explain_line``): how it was priced
    and the events behind it, a page at a time."""

    invoice: str  # the invoice's ref (number, else id)
    index: int  # the line's place in the invoice (0-based)
    line: FeeRow
    currency: str
    rounding: str | None  # the rule that rounded its precise amount ("half_up to 0.01"), None: not a priced line
    precise_amount: str | None  # before that one rounding step
    tiers: tuple  # explain.Tier: number, units, per_unit, flat, amount
    events: tuple  # explain.EventRow of this page: id, timestamp_ms, transaction_id, properties
    next_after: str | None  # the page after this one (``?after=``), None: the last
    has_events: bool  # whether events are behind it (a usage or policy credit line)


@attrs.frozen
class AlertRow:
    kind: str  # budget | job_limit
    threshold: str  # "80%", or the job event's transaction id
    amount: Decimal  # the spend (or the job's cost) that fired it
    limit: Decimal
    currency: str
    fired_ms: int
    period: str  # the billing period's label
    subscription: str


@attrs.frozen
class EstimateView:
    job: str  # "8 × H100-SXM for 10 h"
    contract: str
    subscription: str
    currency: str
    period_label: str
    lines: tuple[LineChange, ...]  # the lines the job adds or changes (units, amounts before/after, amount_delta)
    before: Totals
    after: Totals
    delta: Totals
    summary: str  # one paragraph (estimate.summary)
    estimate: Estimate = attrs.field(eq=False, repr=False)


# ---------------------------------------------------------------- the contracts, compiled once


@attrs.frozen
class _Contracts:
    """The contracts as compiled at one time, and what the portal keeps of them."""

    stamp: tuple  # (path, mtime_ns, size) of every .bill file
    generation: int  # 1 for the first compilation, then one more each time (part of what is kept's keys)
    estimator: Estimator = attrs.field(eq=False)
    by_customer: dict = attrs.field(eq=False)  # customer id -> its contracts (name order)


# ---------------------------------------------------------------- the portal


class Portal:
    """One customer's data at a time, for the portal's pages (see the module's docstring)."""

    def __init__(self, store, contract_paths: Sequence[str], *, now_ms: Callable[[], int] = clock_ms):
        self._owned = isinstance(store, (str, os.PathLike))
        self.store = open_event_store(str(store), readonly=True, create=False) if self._owned else store
        self.paths = [str(p) for p in contract_paths]
        self.now_ms = now_ms
        self.kept = KeptValues(self.store, now_ms)
        self._lock = threading.Lock()
        self._compiling = threading.Lock()
        self._estimating = threading.Lock()
        self._contracts: _Contracts | None = None
        self._looked = 0.0  # time.monotonic() when the .bill files were last looked at
        self._priced: dict = {}  # (generation, first contract, period) -> (store state, its invoices)

    def close(self) -> None:
        self.kept.close()
        if self._owned:
            self.store.close()

    # -- who

    def customer(self, customer_id: str) -> Customer | None:
        """Who the customer is and its subscriptions; None when no contract bills it."""
        contracts = self._compiled().by_customer.get(customer_id)
        if not contracts:
            return None
        catalog = self._compiled().estimator.catalog
        c0 = next((c for c in contracts if c.customer is not None and c.customer.display_name is not None), None)
        name = c0.customer.display_name.value if c0 is not None else customer_id
        return Customer(customer_id, name, tuple(_subscription_info(catalog, c) for c in contracts
                                                 if c.subscription is not None))

    # -- usage and standing

    def usage(self, customer_id: str, period: str | None = None) -> Usage:
        """The customer's usage in ``period`` ("YYYY-MM": the billing periods ending in that month, as `gpubill
        invoice --period`), by default in the billing periods containing now."""
        text = self._period_text(period, customer_id)
        return self._fresh(customer_id, ("usage", text), lambda store, invs, unrated: usage_of(
            store, customer_id, text, invs, unrated, self.now_ms()), text)

    def standing(self, customer_id: str) -> Standing:
        """Where the customer stands now against commitment, reservation, budget and credits."""
        text = self._period_text(None, customer_id)
        return self._fresh(customer_id, ("standing", text), lambda store, invs, unrated: standing_of(
            store, customer_id, invs, unrated, self.now_ms()), text)

    def _period_text(self, period: str | None, customer_id: str) -> str:
        if period is None:  # today where the customer's contract bills: its billing period containing now
            return dt.datetime.fromtimestamp(self.now_ms() / 1000, ZoneInfo(self._timezone(customer_id))
                                             ).date().isoformat()
        try:
            return dt.datetime.strptime(period, "%Y-%m").strftime("%Y-%m")
        except ValueError:
            raise ServiceError(f"period: expected a month YYYY-MM, got {period!r}", EXIT_USAGE) from None

    def _timezone(self, customer_id: str) -> str:
        """The timezone the customer's (first) contract bills in (its periods' days)."""
        compiled = self._compiled()
        c = self._mine(customer_id, compiled)[0]
        catalog = compiled.estimator.catalog
        plan = catalog.plan_version(c.plan) if c.plan is not None else None
        return timezone_of(catalog, c, plan) if plan is not None else "UTC"

    def _fresh(self, customer_id: str, what: tuple, compute: Callable, period_text: str):
        """``compute(store, invoices, unrated)`` over the customer's invoices of ``period_text``, kept while
        nothing it depends on changed (``kept.KeptValues``): the events, and the stored invoices, credit notes
        and alerts (the invoices are priced with what the store carries into them, as a stored draft is)."""
        compiled = self._compiled()  # once: the key and the value from the same compilation
        contracts = self._mine(customer_id, compiled)
        subs = {c.subscription.value for c in contracts if c.subscription is not None}
        return self.kept.get((compiled.generation, customer_id, what), subs,
                             lambda: compute(self.store, *self._shared_invoices(compiled, contracts, subs,
                                                                                period_text)),
                             ledger=True)

    def _shared_invoices(self, compiled: _Contracts, contracts: tuple, subs: set, period_text: str) -> tuple:
        """``_invoices``, computed once for the usage and the standing of one page (the same store state)."""
        key, state = (compiled.generation, contracts[0].name.name, period_text), self.kept.state(subs, True)
        with self._lock:
            hit = self._priced.get(key)
        if hit is not None and hit[0] == state:
            return hit[1]
        value = self._invoices(compiled.estimator.catalog, contracts, period_text)
        with self._lock:
            if len(self._priced) >= PRICED_KEPT:
                self._priced.clear()
            self._priced[key] = (state, value)
        return value

    def _invoices(self, catalog, contracts: tuple, period_text: str) -> tuple[tuple, tuple[str, ...]]:
        """The final invoices of the contracts' billing periods ``period_text`` invoices, and why any could not be."""
        names = {c.name.name for c in contracts}
        customer = customer_of(contracts[0])
        part = _of_customer(catalog, contracts)
        try:
            carry = carried(self.store, part, customer)  # credit notes, voided invoices, late events
            report = invoice_catalog(self.store, part, period_text, customer, carried=carry)
        except ServiceError as e:  # no contract of the customer active then, or one that cannot be priced
            return (), (str(e).splitlines()[0],)
        mine = tuple(i for i in report.invoices if i.billing.contract.name.name in names)
        return mine, tuple(report.unrated)

    # -- invoices

    def invoices(self, customer_id: str) -> InvoiceList:
        """The stored invoices of the customer's contracts, newest first, and their credit notes."""
        rows = stored_invoices(self.store._read(), self._mine(customer_id))
        rows.sort(key=lambda r: (r.period_from_ms, r.created_ms), reverse=True)
        return InvoiceList(tuple(_summary(r) for r in rows), _notes(self.store._read(), [r.id for r in rows]))


    def invoice(self, customer_id: str, ref: str) -> InvoiceView | None:
        """One invoice of the customer, itemized: a stored one by id or number, or ``current`` (``current:SUB``)
        for the live draft of the period containing now; None when the customer has no such invoice."""
        contracts = self._compiled().by_customer.get(customer_id)
        if not contracts:
            return None
        if ref == CURRENT or ref.startswith(CURRENT + ":"):
            return self._live(customer_id, ref)
        row = ledger.get_invoice(self.store._read(), ref)
        if row is None or row.contract not in {c.name.name for c in contracts}:
            return None
        formats = DRAFT_FORMATS if row.status == "draft" else FINAL_FORMATS
        return _view(row.number or row.id, row.id, row.status, stored_invoice(row), formats)

    def _live(self, customer_id: str, ref: str) -> InvoiceView | None:
        sub = ref.partition(":")[2]
        usage = self.usage(customer_id)
        found = next((u for u in usage.subscriptions if not sub or u.subscription == sub), None)
        if found is None:
            return None
        return _view(CURRENT + (f":{sub}" if sub else ""), None, "live", found.doc, DRAFT_FORMATS)

    def export(self, customer_id: str, ref: str, fmt: str) -> tuple[bytes, str, str] | None:
        """(the invoice (or credit note, by its number or id) in ``fmt``, a file name, its media type); None when
        the customer has no such invoice or credit note.
        ServiceError (one line) for a format the invoice is not given in."""
        view = self.invoice(customer_id, ref)
        if view is None:
            return self._credit_note(customer_id, ref, fmt)
        if fmt not in view.downloads:
            raise ServiceError(f"this invoice downloads as {', '.join(view.downloads)}, not {fmt!r}", EXIT_USAGE)
        try:
            data = self._bytes(view, fmt)
        except ExportError as e:
            raise ServiceError(str(e)) from None
        ext, media = MEDIA[fmt]
        name = view.ref if view.id is not None else f"{view.subscription}-{view.period_label}-draft"  # ref: number, else id
        return data, f"{name}.{ext}", media

    def _credit_note(self, customer_id: str, ref: str, fmt: str) -> tuple[bytes, str, str] | None:
        """A credit note on one of the customer's invoices, as `gpubill invoices export` writes it (pdf, ubl, json)."""
        contracts = self._compiled().by_customer.get(customer_id) or ()
        db = self.store._read()
        note = ledger.get_credit_note(db, ref)
        invoice = ledger.get_invoice(db, note.invoice_id) if note is not None else None
        if invoice is None or invoice.contract not in {c.name.name for c in contracts}:
            return None
        if fmt not in NOTE_FORMATS:
            raise ServiceError(f"a credit note downloads as {', '.join(NOTE_FORMATS)}, not {fmt!r}", EXIT_USAGE)
        try:
            data = credit_note_file(note.doc, invoice.doc, fmt)
        except ExportError as e:
            raise ServiceError(str(e)) from None
        ext, media = MEDIA[fmt]
        return data, f"{note.number}.{ext}", media

    def _bytes(self, view: InvoiceView, fmt: str) -> bytes:
        stored = fmt == "pdf" and view.id is not None  # a stored invoice's PDF lists its credit notes
        notes = [n.doc for n in ledger.credit_notes(self.store._read(), invoice_id=view.id)] if stored else ()
        return invoice_file(view.doc, fmt, notes)

    # -- a line explained

    def line(self, customer_id: str, ref: str, index: int, after: str | None = None) -> LineView | None:
        """Line ``index`` of the customer's stored invoice ``ref``, with a page of its events after the keyset
        ``after`` ("TIMESTAMP-ID"); None when the customer has no such invoice or line."""
        view = self.invoice(customer_id, ref)
        if view is None or view.id is None or not 0 <= index < len(view.lines):
            return None
        compiled = self._compiled()
        row = ledger.get_invoice(self.store._read(), view.id)
        known = (_of_customer(compiled.estimator.catalog, self._mine(customer_id, compiled)), compiled.estimator.sources)
        e = explain_line(self.store, self.paths, VISITOR, row, index, loaded=known)
        page = events_page(self.store, e.events, _keyset(after)) if e.events is not None else None
        last = page.after if page is not None else None
        return LineView(view.ref, index, view.lines[index], view.currency,
                        rounding_rule(e.rounding) if e.rounding is not None else None,
                        e.fee.get("precise_amount"), e.tiers, page.rows if page is not None else (),
                        f"{last[0]}-{last[1]}" if last is not None else None, e.events is not None)

    # -- alerts

    def alerts(self, customer_id: str) -> tuple[AlertRow, ...]:
        """The alerts that fired for the customer's contracts, newest first."""
        names = {c.name.name for c in self._mine(customer_id)}
        found = [a for a in list_alerts(self.store, customer=customer_id) if a.contract in names]
        return tuple(AlertRow(a.kind, a.threshold, Decimal(a.amount), Decimal(a.limit_amount), a.currency, a.fired_ms,
                              a.body["period"]["label"], a.subscription)
                     for a in sorted(found, key=lambda a: (a.fired_ms, a.id), reverse=True))

    # -- estimate

    def estimate(self, customer_id: str, form: dict[str, str]) -> EstimateView:
        """What a job (form fields gpu_type, count, hours, region, class, optionally subscription) starting now
        adds to the customer's invoice; ServiceError (one line) for bad input."""
        contracts = self._mine(customer_id)
        subs = [c.subscription.value for c in contracts if c.subscription is not None]
        sub = (form.get("subscription") or "").strip() or (subs[0] if subs else "")
        if sub not in subs:
            raise ServiceError(f"subscription: not one of yours ({', '.join(subs)})", EXIT_USAGE)
        job = job_of(form)
        estimator = self._compiled().estimator
        with self._estimating:
            estimator.store = self.store
            try:
                e = estimator.estimate(sub, job, at_ms=self.now_ms())
            except ServiceError as err:
                raise ServiceError(_form_words(str(err)), err.code) from None
        return EstimateView(job.label(), e.contract, e.subscription, e.currency, e.period_label, e.changes,
                            e.totals_before, e.totals_after, e.delta, summary(e), e)

    # -- the contracts

    def _mine(self, customer_id: str, compiled: _Contracts | None = None) -> tuple:
        """The customer's contracts (UnknownCustomer when none)."""
        contracts = (compiled or self._compiled()).by_customer.get(customer_id)
        if not contracts:
            raise UnknownCustomer(f"no contract bills customer {customer_id!r}", EXIT_USAGE)
        return contracts

    def warm(self, customers: Sequence[str] = ()) -> None:
        """Compile the contracts now (the first request otherwise waits for it), then compute and keep the
        usage, standing and estimate baselines of ``customers`` (those holding a link: their first pages then
        wait for nothing)."""
        compiled = self._compiled()
        for customer in customers:
            if compiled.by_customer.get(customer):
                self.usage(customer)
                self.standing(customer)
                self._prepare_estimates(compiled, customer)

    def _prepare_estimates(self, compiled: _Contracts, customer_id: str) -> None:
        """The estimator's baselines of the customer's current periods (its first estimate then waits for none)."""
        for c in self._mine(customer_id, compiled):
            if c.subscription is None:
                continue
            with self._estimating:
                compiled.estimator.store = self.store
                try:
                    compiled.estimator.prepare(c.subscription.value, self.now_ms())
                except ServiceError:  # not active now: nothing to estimate against
                    continue

    def _compiled(self) -> _Contracts:
        """The contracts as last compiled; every RECHECK_S a request has them looked at again in the background."""
        with self._lock:
            current, due = self._contracts, time.monotonic() - self._looked >= RECHECK_S
            if current is not None and due:
                self._looked = time.monotonic()
        if current is None:
            return self.reload_contracts()
        if due:
            threading.Thread(target=self.reload_contracts, name="gpubill-portal-contracts", daemon=True).start()
        return current

    def reload_contracts(self) -> _Contracts:
        """The contracts compiled again if a .bill file changed since they were (else as they are)."""
        with self._compiling:
            stamp = bill_files_stamp(self.paths)
            with self._lock:
                current = self._contracts
            if current is None or stamp != current.stamp:
                current = self._compile(stamp, current.generation + 1 if current is not None else 1)
                self.kept.clear()  # what was kept of the contracts before
            with self._lock:
                self._contracts, self._looked = current, time.monotonic()
            return current

    def _compile(self, stamp: tuple, generation: int) -> _Contracts:
        estimator = Estimator(self.store, self.paths)
        by_customer: dict = {}
        for name in sorted(estimator.catalog.contracts):
            c = estimator.catalog.contracts[name]
            by_customer.setdefault(customer_of(c), []).append(c)
        return _Contracts(stamp, generation, estimator, {k: tuple(v) for k, v in by_customer.items()})


def _subscription_info(catalog, c) -> SubscriptionInfo:
    plan = catalog.plan_version(c.plan) if c.plan is not None else None
    currency = plan.currency.name if plan is not None and plan.currency is not None else ""
    code = c.entity.name if c.entity is not None else ""
    entity = catalog.entities.get(code) if code else None
    name = entity.display_name.value if entity is not None and entity.display_name is not None else code
    where = (entity.country or (entity.address.country if entity.address is not None else None)) if entity else None
    country = where.value if where is not None else None
    return SubscriptionInfo(c.name.name, c.subscription.value, currency, name, code, _plan_label(plan), country)


def _of_customer(catalog, contracts: tuple):
    """The catalog with only these contracts (a customer's): none of 10 000 others to look through."""
    return attrs.evolve(catalog, contracts={c.name.name: c for c in contracts})


def _keyset(after: str | None) -> tuple[int, int] | None:
    """``TIMESTAMP-ID`` (a page's ``next_after``) as the keyset; None for none (ServiceError for garbage)."""
    if not after:
        return None
    ts, _, event_id = after.partition("-")
    if not (ts.isdigit() and event_id.isdigit()):
        raise ServiceError(f"after: expected TIMESTAMP-ID from a page's next link, got {after[:40]!r}", EXIT_USAGE)
    return int(ts), int(event_id)


def job_of(form: dict[str, str]) -> Job:
    """The job a form describes (ServiceError, one line, for a missing or bad field)."""
    gpu = (form.get("gpu_type") or "").strip()
    if not gpu:
        raise ServiceError("gpu_type: choose a GPU type", EXIT_USAGE)
    return Job(gpu, _number(form, "count"), _number(form, "hours"), (form.get("region") or "").strip() or None,
               (form.get("class") or "").strip() or None)


def _form_words(message: str) -> str:
    """The estimator's message with the form's field names for the command line's options."""
    for field, option in OPTION_OF.items():
        if message.startswith(option + ":"):
            return FIELD_OF[field] + message[len(option):]
    return message


def _number(form: dict[str, str], name: str) -> Decimal:
    text = (form.get(name) or "").strip()
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ServiceError(f"{name}: expected a number, got {text!r}", EXIT_USAGE) from None


def _view(ref: str, invoice_id: str | None, status: str, doc: dict, formats: tuple[str, ...]) -> InvoiceView:
    credits = tuple(CreditRow(c["item"]["name"], c["item"]["type"], Decimal(c["amount"]), c["before_taxes"])
                    for c in doc.get("credits", ()))
    taxes = tuple(TaxRow(t["tax_name"], t["tax_rate"], Decimal(t["fees_amount"]), Decimal(t["amount"]))
                  for t in doc.get("applied_taxes", ()))
    return InvoiceView(ref, invoice_id, doc["number"], status, doc["invoice_type"], doc["external_subscription_id"],
                       doc["contract"], doc["currency"], doc["billing_period"]["label"], doc["issuing_date"],
                       fee_rows(doc), credits, taxes, {k: Decimal(doc[k]) for k in TOTALS if k in doc}, formats, doc)
