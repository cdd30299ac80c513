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
from collections.abc import Sequence

import attrs

from gpubill.contracts.build import invoice_of
from gpubill.contracts.context import Billing, local_date
from gpubill.contracts.invoice import Invoice, opening_ledger
from gpubill.dsl import ast
from gpubill.dsl.resolve import Catalog
from gpubill.engine.pricing.fees import parts_by_subscription
from gpubill.engine.spec.compile import CompileError, compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription
from gpubill.service.rating import (
    Billed, ServiceError, billed_subscriptions, load_catalog, rate_billed, unrated_text,
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


def invoice_period(store, contract_paths: Sequence[str], period_text: str, customer: str | None = None,
                   engine: str = "fast", progressive: bool = False) -> InvoiceReport:
    catalog, sources = load_catalog(contract_paths)
    billed = billed_subscriptions(catalog, period_text, customer)
    chains = [history(catalog, b) + [b] for b in billed]
    rated = rate_rounds(store, chains, engine)
    invoices, unrated = [], []
    for chain in chains:
        left_out = [rated[id(b)] for b in chain if isinstance(rated[id(b)], str)]
        if left_out:
            unrated.append(left_out[0])
            continue
        invoices.append(invoice_chain(catalog, chain, rated))
    return InvoiceReport(tuple(invoices), tuple(unrated), catalog, sources)


def needs_history(contract: ast.Contract, plan: ast.Plan) -> bool:
    """Whether earlier invoices change this one: terms that carry across invoices."""
    return bool(
        contract.credits
        or any(d.frequency != "forever" for d in contract.discounts)
        or any((c.per or "period") != "period" or c.true_up == "term" for c in contract.commits)
        or contract.progressive is not None or plan.progressive is not None
    )


def history(catalog: Catalog, b: Billed) -> list[Billed]:
    """The contract's billing periods before ``b``'s, from its start, each resolved and compiled."""
    c = b.contract
    if c.starts is None or not needs_history(c, b.plan):
        return []
    out: list[Billed] = []
    day = c.starts.value.date() if isinstance(c.starts.value, dt.datetime) else c.starts.value
    while True:
        try:
            resolved = resolve_subscription(catalog, c, ("date", day))
            if resolved.period.from_ms >= b.period.from_ms:
                return out
            out.append(Billed(resolved, compile_subscription(catalog, resolved)))
        except (CompileError, ValueError) as e:
            raise ServiceError(f'contract "{c.name.name}": {e}') from None
        day = local_date(resolved.period.to_ms + 1, resolved.timezone)


def rate_rounds(store, chains: list[list[Billed]], engine: str) -> dict:
    """Rate every (contract, period) of the chains, one store read per round:
    round k rates the k-th last period of every chain.  id(Billed) -> its
    (lines, pay-in-advance fees), or the one-line reason it was left out."""
    out: dict = {}
    depth = max((len(ch) for ch in chains), default=0)
    for k in range(1, depth + 1):
        round_ = [ch[-k] for ch in chains if len(ch) >= k]
        result = rate_billed(store, round_, engine)
        lines: dict = {}
        for ln in result.lines:
            lines.setdefault(ln.subscription, []).append(ln)
        fees = {sid: [f for part in parts for f in part] for sid, parts in parts_by_subscription(result.in_advance).items()}
        left_out = {u.subscription: u for u in result.unrated}
        for b in round_:
            sid = b.spec.external_id
            u = left_out.get(sid)
            out[id(b)] = unrated_text(b, u) if u is not None else (lines.get(sid, []), fees.get(sid, []))
    return out


def invoice_chain(catalog: Catalog, chain: list[Billed], rated: dict) -> Invoice:
    """Invoice the chain's periods in order; the last period's invoice."""
    ledger = opening_ledger(chain[-1].contract)
    invoice = None
    for b in chain:
        lines, fees = rated[id(b)]
        invoice, ledger = invoice_of(Billing(b.resolved, catalog), b.spec, lines, fees, ledger)
    return invoice
