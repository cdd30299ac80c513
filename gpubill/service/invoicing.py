"""Invoice a period: contracts (.bill files) + the event store -> invoices.

The use case behind `gpubill invoice` (and the invoices `gpubill test`
checks): the period's subscriptions are resolved and compiled as for `rate`;
a contract whose terms carry from one invoice to the next (coupons used up
over invoices, prepaid balances, commitment windows longer than a period,
progressive thresholds on lifetime usage) also has its earlier periods,
from its start, rated and invoiced in order, so that its invoice starts from
the ledger they leave.  Each round of rating reads the store once, as
columns, for every subscription of the round; the contracts layer then
prices every term (``gpubill.contracts.build.invoice_of``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs

from gpubill.contracts.build import (
    invoice_of, progressive_amount, progressive_fees, progressive_invoice_of, usage_fees,
)
from gpubill.contracts.context import Billing, local_date
from gpubill.contracts.invoice import Invoice, Ledger, billed_usage, opening_ledger
from gpubill.contracts.progressive import credit_of, passed, thresholds_of
from gpubill.contracts.spread import ZERO
from gpubill.dsl import ast
from gpubill.dsl.resolve import Catalog
from gpubill.engine.calendar.period import parse_period_arg
from gpubill.engine.pricing.fees import parts_by_subscription
from gpubill.engine.spec.compile import CompileError, compile_subscription
from gpubill.engine.spec.program import SubscriptionSpec
from gpubill.engine.spec.subscription import resolve_subscription
from gpubill.service.rating import (
    Billed, ServiceError, billed_subscriptions, compact_read, load_catalog, rate_billed, read_window, unrated_text,
)


@attrs.frozen
class InvoiceReport:
    """The period's invoices, one per contract in contract-name order (a
    contract's progressive invoices before its final one when asked for),
    and the contracts that could not be invoiced, each with why."""

    invoices: tuple[Invoice, ...]
    unrated: tuple[str, ...]
    catalog: Catalog
    sources: dict
    no_period_ends: tuple[str, ...] = ()  # active contracts none of whose billing periods ends in the period
    left_out: tuple[str, ...] = ()  # the contracts ``unrated`` names, in its order


@attrs.frozen
class Carried:
    """What the invoice lifecycle carries into the invoices it recomputes:
    each contract's credit notes (their whole credit, oldest first: the chain
    consumes them in order), adjustment lines for one period of a contract
    (late events of a finalized invoice, billed on the next), and the
    invoices that were voided (``invoice_id``): what each consumed is given
    back to the invoices after it (see ``given_back``)."""

    credit_notes: dict = attrs.field(factory=dict)  # contract name -> tuple[CreditNoteBalance]
    adjustments: dict = attrs.field(factory=dict)  # (contract name, period from_ms) -> tuple[FeeLine]
    voided: frozenset = frozenset()  # invoice_id of each invoice whose latest document is voided

    def lines_into(self, b: Billed) -> tuple:
        """The adjustment lines carried into ``b``'s period (late events of the invoice before it)."""
        return self.adjustments.get((b.contract.name.name, b.period.from_ms), ())


def invoice_id(inv: Invoice) -> str:
    """Stable for the same contract, subscription, period and type: a refresh finds its draft again."""
    b = inv.billing
    return _invoice_id(b.contract, b.period, inv.invoice_type, inv.to_ms)


def final_invoice_id(b: Billed) -> str:
    """``invoice_id`` of the period's final invoice (the one that ends it), before it is made."""
    return _invoice_id(b.contract, b.period, "subscription", b.period.to_ms)


def _invoice_id(contract: ast.Contract, period, invoice_type: str, to_ms: int) -> str:
    key = f"{contract.name.name}/{contract.subscription.value}/{period.from_ms}/{invoice_type}/{to_ms}"
    return "inv_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def given_back(before: Ledger, after: Ledger, still_billed: Decimal = ZERO) -> Ledger:
    """The ledger a voided invoice leaves: what it consumed is given back (Lago's void recredits the coupons,
    the prepaid credits and the credit notes it used) and its usage leaves the lifetime usage that progressive
    thresholds compare, but for ``still_billed`` (the period's usage its progressive invoices that stand
    billed); the commitments' windows go on as billed."""
    return attrs.evolve(after, coupons=before.coupons, balances=before.balances, credit_notes=before.credit_notes,
                        lifetime_usage=before.lifetime_usage + still_billed)


NOTHING_CARRIED = Carried()


def invoice_period(store, contract_paths: Sequence[str], period_text: str, customer: str | None = None,
                   engine: str = "fast", progressive: bool = False,
                   carried: Carried = NOTHING_CARRIED) -> InvoiceReport:
    """Every contract's invoices for ``period_text``: a month or a range
    invoices each billing period that ends in it (a weekly plan's four or
    five, a quarterly plan's only in the quarter's last month, a
    termination's); a date invoices the billing period that contains it."""
    catalog, sources = load_catalog(contract_paths)
    return invoice_catalog(store, catalog, period_text, customer, engine, progressive, carried, sources)


def invoice_catalog(store, catalog: Catalog, period_text: str, customer: str | None = None,
                    engine: str = "fast", progressive: bool = False, carried: Carried = NOTHING_CARRIED,
                    sources: dict | None = None) -> InvoiceReport:
    """``invoice_period`` with the contracts already loaded (``gpubill diff``
    invoices a part of a catalog: the contracts a change reaches)."""
    billed = billed_subscriptions(catalog, period_text, customer, handover=True)
    kind, value = parse_period_arg(period_text)
    targets = [periods_to_invoice(catalog, b, kind, value) for b in billed]
    chains = [history(catalog, ts[0]) + ts for ts in targets if ts]
    by_period, unrated = invoice_chains(store, catalog, chains, engine, carried)
    invoices = []
    for b in (b for ts in targets for b in ts if id(b) in by_period):
        invoices.extend(by_period[id(b)] if progressive else by_period[id(b)][-1:])
    idle = tuple(b.contract.name.name for b, ts in zip(billed, targets) if not ts)
    left_out = tuple(ch[-1].contract.name.name for ch in chains if id(ch[-1]) not in by_period)
    return InvoiceReport(tuple(invoices), tuple(unrated), catalog, sources or {}, idle, left_out)


def invoice_chains(store, catalog: Catalog, chains: list[list[Billed]], engine: str,
                   carried: Carried = NOTHING_CARRIED) -> tuple[dict, list[str]]:
    """Rate and invoice each chain (a contract's periods, in order): one
    engine run per round, then the progressive checks' runs.  id(Billed) ->
    its invoices, for every chain rated in full; and, for each other chain,
    the one line that says why it was left out."""
    rated = rate_rounds(store, chains, engine)
    rated.update(rate_checks(store, catalog, chains, rated, engine, carried.voided))
    by_period: dict = {}
    unrated: list[str] = []
    for chain in chains:
        left_out = [rated[id(b)] for b in chain if isinstance(rated[id(b)], str)]
        if left_out:
            unrated.append(left_out[0])
        else:
            by_period.update(invoice_chain(catalog, chain, rated, carried))
    return by_period, unrated


def periods_to_invoice(catalog: Catalog, b: Billed, kind: str, value) -> list[Billed]:
    """The billing periods of ``b``'s contract that a classified ``--period`` invoices."""
    if kind == "date" or (kind == "month" and _calendar_month(b)):
        return [b]
    return closing_periods(catalog, b, *period_days(kind, value))


def _calendar_month(b: Billed) -> bool:
    billing = b.plan.billing
    return billing is None or (billing.interval == "monthly" and (billing.anchor or "calendar") == "calendar")


def period_days(kind: str, value) -> tuple[dt.date, dt.date]:
    """The first and last day a month or a range names."""
    if kind == "month":
        y, m = value
        return dt.date(y, m, 1), dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)
    return tuple(v.date() if isinstance(v, dt.datetime) else v for v in value)


def closing_periods(catalog: Catalog, b: Billed, first: dt.date, last: dt.date) -> list[Billed]:
    """The contract's billing periods that end between ``first`` and ``last``
    (its local days), or that its termination ends there."""
    out = []
    for p in periods_from(catalog, b.contract, first):
        if local_date(p.period.from_ms, p.timezone) > last:
            return out
        r = p.resolved
        ends_ms = r.period.to_ms if r.terminated_ms is None else min(r.period.to_ms, r.terminated_ms)
        if r.active and local_date(ends_ms, r.timezone) <= last:
            out.append(p)
    return out


def history(catalog: Catalog, b: Billed) -> list[Billed]:
    """The contract's billing periods before ``b``'s, from its start, each resolved and compiled."""
    c = b.contract
    if c.starts is None or not ast.carries_across_invoices(c, b.plan):
        return []
    out: list[Billed] = []
    start = c.starts.value.date() if isinstance(c.starts.value, dt.datetime) else c.starts.value
    for p in periods_from(catalog, c, start):
        if p.period.from_ms >= b.period.from_ms:
            return out
        out.append(p)
    return out


def periods_from(catalog: Catalog, c: ast.Contract, day: dt.date):
    """The contract's billing periods, from the one containing ``day`` on,
    each resolved and compiled (a period priced by the same plan version as
    the one before reuses its compiled charges)."""
    prev = None
    while True:
        try:
            resolved = resolve_subscription(catalog, c, ("date", day))
            prev = Billed(resolved, respec(catalog, prev, resolved))
        except (CompileError, ValueError) as e:
            raise ServiceError(f'contract "{c.name.name}": {e}') from None
        yield prev
        day = local_date(resolved.period.to_ms + 1, resolved.timezone)


def respec(catalog: Catalog, prev: Billed | None, resolved) -> SubscriptionSpec:
    """The program of a contract's next period: the previous period's charges
    with the new bounds when the same plan version prices it (charges do not
    depend on the period), else compiled anew."""
    if prev is None or prev.resolved.plan is not resolved.plan or prev.resolved.timezone != resolved.timezone:
        return compile_subscription(catalog, resolved)
    return attrs.evolve(prev.spec, period_from_ms=resolved.period.from_ms, period_to_ms=resolved.period.to_ms)


def rate_rounds(store, chains: list[list[Billed]], engine: str) -> dict:
    """Rate every (contract, period) of the chains, one store read per round:
    round k rates the k-th last period of every chain.  id(Billed) -> its
    (lines, pay-in-advance fees), or the one-line reason it was left out."""
    out: dict = {}
    depth = max((len(ch) for ch in chains), default=0)
    for k in range(1, depth + 1):
        for round_ in one_per_subscription([ch[-k] for ch in chains if len(ch) >= k]):
            out.update(rate_round(store, round_, engine))
    return out


def one_per_subscription(billed: list[Billed]) -> list[list[Billed]]:
    """Split into runs that bill each subscription once (a plan change bills it twice in one period)."""
    runs: list[list[Billed]] = []
    seen: dict[str, int] = {}  # subscription id -> how many runs bill it
    for b in billed:
        k = seen.get(b.spec.external_id, 0)
        seen[b.spec.external_id] = k + 1
        if k == len(runs):
            runs.append([])
        runs[k].append(b)
    return runs


def rate_round(store, round_: list[Billed], engine: str) -> dict:
    """One engine run over subscriptions billed once each: id(Billed) -> (lines, fees) or why it was left out."""
    out: dict = {}
    if round_:
        result = rate_billed(store, round_, engine)
        lines: dict = {}
        for ln in result.lines:
            lines.setdefault(ln.subscription, []).append(ln)
        fees = parts_by_subscription(result.in_advance)
        left_out = {u.subscription: u for u in result.unrated}
        for b in round_:
            sid = b.spec.external_id
            u = left_out.get(sid)
            out[id(b)] = unrated_text(b, u) if u is not None else (lines.get(sid, []), fees.get(sid, []))
    return out


def rate_checks(store, catalog: Catalog, chains: list[list[Billed]], rated: dict, engine: str,
                voided: frozenset = frozenset()) -> dict:
    """The usage as of each daily progressive check, for every period whose
    thresholds its whole usage could pass (the others' checks pass nothing),
    one engine run per day for all of them: (id(Billed), cut) -> (lines, fees)
    or why it was left out. After a ``voided`` final invoice the lifetime
    usage depends on the checks themselves: every later period is checked."""
    checks = []
    for chain in chains:
        if any(isinstance(rated[id(b)], str) for b in chain) or not any(
                thresholds_of(b.contract, b.plan) is not None for b in chain):
            continue
        lifetime = ZERO  # the final invoices' usage so far (progressive ones do not add to it)
        known = True  # whether ``lifetime`` is (no final invoice before was voided)
        for b in chain:
            billing, (lines, fees) = Billing(b.resolved, catalog), rated[id(b)]
            p = thresholds_of(billing.contract, billing.plan)
            if p is not None and (not known or passed(p, lifetime, progressive_amount(billing, lines))):
                checks.append((b, day_ends(billing)))
            lifetime += billed_usage(usage_fees(billing, b.spec, lines, fees))
            known = known and not (voided and final_invoice_id(b) in voided)
    out: dict = {}
    # one read for every check: a check's spec stops at its cut, so the engine leaves later events out
    source = store if engine == "reference" or not checks else Read(
        compact_read(store.read_columns(**read_window([b for b, _ in checks]))))
    for d in range(max((len(cuts) for _, cuts in checks), default=0)):
        keys, day = {}, []
        for b, cuts in checks:
            if len(cuts) > d:
                day.append(as_of(b, cuts[d]))
                keys[id(day[-1])] = (id(b), cuts[d])
        for run in one_per_subscription(day):
            for key, r in rate_round(source, run, engine).items():
                out[keys[key]] = r
    return out


@attrs.frozen
class Read:
    """Events already read as columns, served to every later run: the fast
    engine reads only the rows of its subscriptions and window from them."""

    columns: object

    def read_columns(self, **window):
        return self.columns


def as_of(b: Billed, cut_ms: int) -> Billed:
    """``b`` as a check at ``cut_ms`` sees it: the events up to that instant."""
    period = attrs.evolve(b.period, to_ms=cut_ms)
    end = b.spec.terminated_at_ms
    spec = attrs.evolve(b.spec, terminated_at_ms=cut_ms if end is None else min(cut_ms, end))
    return Billed(attrs.evolve(b.resolved, period=period), spec)


def invoice_chain(catalog: Catalog, chain: list[Billed], rated: dict, carried: Carried = NOTHING_CARRIED) -> dict:
    """Invoice the chain's periods in order: id(Billed) -> its invoices (its
    progressive invoices, then its final one)."""
    name = chain[-1].contract.name.name
    ledger = opening_ledger(chain[-1].contract, carried.credit_notes.get(name, ()))
    out: dict = {}
    for b in chain:
        out[id(b)], ledger = period_invoices(Billing(b.resolved, catalog), b, rated, ledger, carried.lines_into(b),
                                             carried.voided)
    return out


def period_invoices(billing: Billing, b: Billed, rated: dict, ledger: Ledger, adjustments: tuple = (),
                    voided: frozenset = frozenset()):
    """One period's invoices and the ledger they leave: the progressive
    invoices its daily checks issue (``rate_checks`` rated them when its
    thresholds could pass at all), then the final invoice, crediting the
    latest progressive one that stands. A ``voided`` invoice gives back what
    it consumed (``given_back``)."""
    out: list[Invoice] = []
    standing: Invoice | None = None  # the latest progressive invoice not voided: the next one credits it
    p = thresholds_of(billing.contract, billing.plan)
    for cut in day_ends(billing) if p is not None else ():
        checked = rated.get((id(b), cut))
        if checked is None:  # not checked: its thresholds could not pass
            break
        if isinstance(checked, str):
            raise ServiceError(checked)
        before = out[-1].fees_amount if out else ZERO
        crossed = passed(p, ledger.lifetime_usage + before, progressive_amount(billing, checked[0]) - before)
        if crossed:
            now = progressive_fees(billing, b.spec, checked[0])
            earlier = credit_of(standing) if standing else None
            inv, after = progressive_invoice_of(billing, now, ledger, cut, crossed, earlier)
            ledger, stands = _left_by(inv, ledger, after, voided)
            standing = inv if stands else standing
            out.append(inv)
    lines, fees = rated[id(b)]
    final, after = invoice_of(billing, b.spec, lines, fees, ledger, credit_of(standing) if standing else None,
                              adjustments)
    still_billed = billed_usage(standing.fees) if standing else ZERO
    return out + [final], _left_by(final, ledger, after, voided, still_billed)[0]


def _left_by(inv: Invoice, before: Ledger, after: Ledger, voided: frozenset,
             still_billed: Decimal = ZERO) -> tuple[Ledger, bool]:
    """(the ledger ``inv`` leaves, whether it stands): a voided invoice gives back what it consumed."""
    if voided and invoice_id(inv) in voided:
        return given_back(before, after, still_billed), False
    return after, True


def day_ends(billing: Billing) -> list[int]:
    """The last instant of each local day the contract covers of the period,
    but the last (the final invoice's)."""
    tz = ZoneInfo(billing.timezone)
    day = local_date(billing.covered_from_ms, billing.timezone)
    last = local_date(billing.covered_to_ms, billing.timezone)
    out = []
    while day < last:
        day += dt.timedelta(days=1)
        out.append(int(dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()) * 1000 - 1)
    return out
