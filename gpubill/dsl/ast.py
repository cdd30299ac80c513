"""The typed IR of a `.bill` file: frozen attrs nodes, each with its source span.

`parse` builds these from text; `resolve` links the names across files;
`check` reports what is wrong; `fmt` prints them back canonically. Nodes are
plain values: equal when their content is equal (spans are excluded from
equality, so parse -> fmt -> parse gives an equal IR).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs


def _span_field():
    return attrs.field(default=None, eq=False, repr=False, kw_only=True)


@attrs.frozen
class Span:
    """Where a node came from: 1-based line and column, end exclusive."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


# ---------------------------------------------------------------- leaves


@attrs.frozen
class Ref:
    """A name written in the source: a block, a property, a dimension."""

    name: str
    span: Span | None = _span_field()


@attrs.frozen
class Str:
    """A quoted string (dimension values, ids, display names)."""

    value: str
    span: Span | None = _span_field()


@attrs.frozen
class Number:
    value: Decimal
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span_field()


@attrs.frozen
class Amount:
    """Money as written: a decimal and an optional currency (else the plan's)."""

    value: Decimal
    currency: str | None = None
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span_field()


@attrs.frozen
class Quantity:
    """A number with a unit: `60 seconds`, `1M tokens`, `3 days`."""

    value: Decimal
    unit: str
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span_field()


@attrs.frozen
class Percent:
    value: Decimal  # 20% -> Decimal("20")
    span: Span | None = _span_field()


@attrs.frozen
class Unit:
    """A unit name after `per` or `in`: hour, GPU-hour, token, GB-hour ..."""

    name: str
    span: Span | None = _span_field()


@attrs.frozen
class When:
    """A date (`2026-10-01`) or an instant with an offset (`2026-10-01T00:00Z`).

    `value` is a `date`, or an aware `datetime` (naive instants are rejected
    by the checker, since they are ambiguous for billing).
    """

    value: dt.date | dt.datetime | None
    text: str
    span: Span | None = _span_field()


# ---------------------------------------------------------------- expressions


@attrs.frozen
class Const:
    value: Decimal
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span_field()


@attrs.frozen
class Prop:
    name: str
    span: Span | None = _span_field()


@attrs.frozen
class BinOp:
    op: str  # + - * /
    left: "Expr"
    right: "Expr"
    span: Span | None = _span_field()


@attrs.frozen
class Neg:
    operand: "Expr"
    span: Span | None = _span_field()


Expr = Const | Prop | BinOp | Neg


# ---------------------------------------------------------------- entities


@attrs.frozen
class Tax:
    name: Str
    rate: Percent
    span: Span | None = _span_field()


@attrs.frozen
class Address:
    """A postal address: its lines, and the ISO 3166-1 alpha-2 country when written with it."""

    lines: tuple[Str, ...]
    country: Str | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Entity:
    name: Ref
    display_name: Str | None = None
    currency: Ref | None = None
    timezone: Str | None = None
    taxes: tuple[Tax, ...] = ()
    invoice_prefix: Str | None = None
    numbering: Ref | None = None  # per_customer | per_entity
    invoice_grace: Quantity | None = None
    address: Address | None = None
    country: Str | None = None  # ISO 3166-1 alpha-2
    vat_id: Str | None = None
    span: Span | None = _span_field()


# ---------------------------------------------------------------- metrics


@attrs.frozen
class Aggregation:
    kind: str  # count | sum | max | latest | unique_count | weighted_sum
    expr: Expr | None = None  # sum/max/latest/weighted_sum
    field: Ref | None = None  # unique_count
    unit: Unit | None = None  # `in hours`
    span: Span | None = _span_field()


@attrs.frozen
class PerEvent:
    """`per event duration_seconds up to 1 second, minimum 60 seconds`."""

    prop: Ref
    increment: Quantity | None = None
    minimum: Quantity | None = None
    maximum: Quantity | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Dimension:
    name: Ref
    values: tuple[Str, ...] | None = None  # None: any value
    span: Span | None = _span_field()


@attrs.frozen
class MetricRounding:
    function: str  # round | ceil | floor
    precision: int = 0
    span: Span | None = _span_field()


@attrs.frozen
class Metric:
    name: Ref
    event: Ref | None = None
    aggregation: Aggregation | None = None
    per_event: tuple[PerEvent, ...] = ()
    dimensions: tuple[Dimension, ...] = ()
    rounding: MetricRounding | None = None
    recurring: bool = False
    recurring_span: Span | None = _span_field()
    span: Span | None = _span_field()


# ---------------------------------------------------------------- prices


@attrs.frozen
class Match:
    key: Ref
    values: tuple[Str, ...]
    op: str = "="  # "=" (one value) or "in"
    span: Span | None = _span_field()


@attrs.frozen
class Condition:
    matches: tuple[Match, ...]
    span: Span | None = _span_field()


@attrs.frozen
class Standard:
    amount: Amount
    unit: Unit
    span: Span | None = _span_field()


@attrs.frozen
class TableRow:
    value: Str
    amount: Amount
    span: Span | None = _span_field()


@attrs.frozen
class PriceTable:
    """`per hour by gpu_type { "H100-SXM" 3.49 ... }`: a standard price per value."""

    unit: Unit
    dimension: Ref
    rows: tuple[TableRow, ...]
    span: Span | None = _span_field()


@attrs.frozen
class Tier:
    """`1001 to 5000 at 3.19 flat 10`; `to_value` None means `and above`.

    For graduated percentage tiers `price` is a Percent.
    """

    from_value: Number
    to_value: Number | None
    price: Amount | Percent
    flat: Amount | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Graduated:
    unit: Unit | None
    tiers: tuple[Tier, ...]
    span: Span | None = _span_field()


@attrs.frozen
class Volume:
    unit: Unit | None
    tiers: tuple[Tier, ...]
    span: Span | None = _span_field()


@attrs.frozen
class GraduatedPercentage:
    tiers: tuple[Tier, ...]
    span: Span | None = _span_field()


@attrs.frozen
class Package:
    amount: Amount
    size: Quantity
    free: Quantity | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Percentage:
    rate: Percent
    fixed: Amount | None = None
    free_events: Number | None = None
    free_amount: Amount | None = None
    minimum: Amount | None = None
    maximum: Amount | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Dynamic:
    span: Span | None = _span_field()


Price = Standard | PriceTable | Graduated | Volume | GraduatedPercentage | Package | Percentage | Dynamic


@attrs.frozen
class WherePrice:
    condition: Condition
    price: Price
    span: Span | None = _span_field()


@attrs.frozen
class WindowPrice:
    """`during 2026-10-01 .. 2026-10-08 1.20 per hour` (spot / time-varying)."""

    start: When
    end: When
    price: Price
    span: Span | None = _span_field()


@attrs.frozen
class MoneyRounding:
    mode: str  # half_up | half_even | half_down | up | down | ceiling | floor
    quantum: Number
    span: Span | None = _span_field()


@attrs.frozen
class Charge:
    metric: Ref
    price: Price
    label: Ref | None = None
    filters: tuple[WherePrice, ...] = ()
    windows: tuple[WindowPrice, ...] = ()
    group_by: tuple[Ref, ...] = ()
    timing: str | None = None  # advance | arrears (None: arrears)
    minimum_spend: Amount | None = None
    rounding: MoneyRounding | None = None
    prorated: bool = False
    timing_span: Span | None = _span_field()
    prorated_span: Span | None = _span_field()
    span: Span | None = _span_field()

    @property
    def key(self) -> str:
        """The name overrides and tests use: the label, else the metric."""
        return (self.label or self.metric).name


# ---------------------------------------------------------------- plans


@attrs.frozen
class PlanVersion:
    id: str
    effective_from: When | None = None
    effective_to: When | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Billing:
    interval: str  # weekly | monthly | quarterly | yearly
    anchor: str | None = None  # calendar | anniversary (None: calendar)
    timing: str | None = None  # advance | arrears: when the fixed fee is billed
    span: Span | None = _span_field()


@attrs.frozen
class Fee:
    amount: Amount
    timing: str | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Progressive:
    thresholds: tuple[Amount, ...]
    every: tuple[Amount, ...] = ()  # at most one is valid; more is an error
    span: Span | None = _span_field()


@attrs.frozen
class Plan:
    name: Ref
    version: PlanVersion | None = None
    currency: Ref | None = None
    billing: Billing | None = None
    timezone: Str | None = None
    fee: Fee | None = None
    rounding: MoneyRounding | None = None
    progressive: Progressive | None = None
    charges: tuple[Charge, ...] = ()
    notice: Quantity | None = None  # how long before a price rise takes effect
    span: Span | None = _span_field()


# ---------------------------------------------------------------- contracts


@attrs.frozen
class Customer:
    id: Str
    display_name: Str | None = None
    span: Span | None = _span_field()


@attrs.frozen
class PlanRef:
    name: Ref
    version: str | None = None  # None: the version in effect at each period
    span: Span | None = _span_field()


@attrs.frozen
class Override:
    charge: Ref
    condition: Condition | None
    price: Price
    span: Span | None = _span_field()


@attrs.frozen
class Commit:
    amount: Amount
    per: str | None = None  # period | month | quarter | year | term
    true_up: str | None = None  # period | term
    span: Span | None = _span_field()


@attrs.frozen
class Reserve:
    count: Number
    gpu_type: Str
    metric: Ref
    rate: Amount
    unit: Unit
    billing: str = "prepaid"  # prepaid | arrears
    span: Span | None = _span_field()


@attrs.frozen
class Credit:
    amount: Amount
    kind: str | None = None  # granted | paid
    expires: When | None = None
    priority: Number | None = None
    scope: Ref | None = None  # a charge or metric the credit is limited to
    span: Span | None = _span_field()


@attrs.frozen
class Discount:
    value: Percent | Amount
    frequency: str  # once | forever | recurring
    periods: Number | None = None
    scope: Ref | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Budget:
    amount: Amount
    interval: str | None = None
    alerts: tuple[Percent, ...] = ()
    span: Span | None = _span_field()


@attrs.frozen
class JobLimit:
    """``job limit AMOUNT``: a job event whose own cost exceeds it fires an alert."""

    amount: Amount
    span: Span | None = _span_field()


@attrs.frozen
class LatePolicy:
    grace: Quantity
    target: str | None = None  # next_invoice | new_revision
    span: Span | None = _span_field()


@attrs.frozen
class FailurePolicy:
    kind: str  # infrastructure | user
    action: str  # no_charge | credit | charge_actual
    percent: Percent | None = None
    span: Span | None = _span_field()


@attrs.frozen
class PreemptionPolicy:
    credit: Percent | None  # None: no credit
    span: Span | None = _span_field()


@attrs.frozen
class IdlePolicy:
    kind: str  # allocation | utilization | hybrid
    minimum: Percent | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Contract:
    name: Ref
    customer: Customer | None = None
    subscription: Str | None = None
    entity: Ref | None = None
    plan: PlanRef | None = None
    starts: When | None = None
    ends: When | None = None
    timezone: Str | None = None
    overrides: tuple[Override, ...] = ()
    commits: tuple[Commit, ...] = ()
    reserves: tuple[Reserve, ...] = ()
    credits: tuple[Credit, ...] = ()
    discounts: tuple[Discount, ...] = ()
    progressive: Progressive | None = None
    budget: Budget | None = None
    job_limit: JobLimit | None = None
    late_events: LatePolicy | None = None
    failure_policies: tuple[FailurePolicy, ...] = ()
    preemption: PreemptionPolicy | None = None
    idle: IdlePolicy | None = None
    invoice_grace: Quantity | None = None
    bill_to: Address | None = None  # the customer's postal address
    vat_id: Str | None = None  # the customer's VAT id
    notice: Quantity | None = None  # overrides the plan's notice period
    span: Span | None = _span_field()


def carries_across_invoices(contract: Contract, plan: Plan) -> bool:
    """Whether a contract's earlier invoices change its next one: a discount
    used up over invoices, prepaid credits, a commitment window longer than a
    period or settled at term end, progressive thresholds on lifetime usage.
    Such a contract is invoiced from its start (and a test's usage before its
    period is billed on those earlier invoices)."""
    return bool(
        contract.credits
        or any(d.frequency != "forever" for d in contract.discounts)
        or any((c.per or "period") != "period" or c.true_up == "term" for c in contract.commits)
        or contract.progressive is not None or plan.progressive is not None
    )


def under_commitment(contract: Contract) -> bool:
    """A contract with a minimum commitment or reserved capacity: it keeps the plan version in effect on
    its start day for its whole term (a reservation is a capacity commitment)."""
    return bool(contract.commits or contract.reserves)


# ---------------------------------------------------------------- tests


@attrs.frozen
class UsageProp:
    name: Ref
    value: Str | Number
    span: Span | None = _span_field()


@attrs.frozen
class Usage:
    code: Ref
    props: tuple[UsageProp, ...] = ()
    at: When | None = None
    times: Number | None = None
    span: Span | None = _span_field()


@attrs.frozen
class Expect:
    what: str  # charge | units | total | events
    target: Ref | None
    condition: Condition | None
    value: Amount
    span: Span | None = _span_field()


@attrs.frozen
class TestPeriod:
    text: str
    start: When | None = None
    end: When | None = None
    span: Span | None = _span_field()


@attrs.frozen
class TestBlock:
    name: Str
    contract: Ref | None = None
    period: TestPeriod | None = None
    usages: tuple[Usage, ...] = ()
    expects: tuple[Expect, ...] = ()
    span: Span | None = _span_field()

    __test__ = False  # not a pytest class


Block = Entity | Metric | Plan | Contract | TestBlock


@attrs.frozen
class Document:
    """One parsed file: its blocks in source order."""

    path: str
    blocks: tuple[Block, ...]
