"""The engine's program model: what a rating run receives and what it returns.

These frozen attrs types are the engine's own input language; the DSL
compiler (``gpubill.dsl`` IR -> program) targets them, and so do tests.

Input side (all money and quantities are ``Decimal``; no floats anywhere):

* ``Expr`` -- the per-event quantity: ``Prop(name)``, ``Const(Decimal)``,
  ``Add``, ``Sub``, ``Mul``, ``Div`` (divisor a non-zero constant expression).
  ``poly.compile_expr`` turns it into a polynomial with rational
  coefficients; the kernels evaluate it as an exact int64 polynomial over
  fixed-point property columns and the rational scale is applied once per
  line, after aggregation.
* ``PerEvent(prop, increment, minimum, maximum)`` -- round one property of one
  event before the expression: ``q = M if x <= M else M + ceil((x-M)/I)*I``
  (no minimum: ``q = ceil(x/I)*I``), then ``min(q, maximum)``.
* ``Utilization(prop, floor, ceiling)`` -- multiply the per-event quantity by
  ``min(max(u, floor), ceiling)`` (hybrid / utilization billing).
* ``MetricSpec`` -- event code, aggregation, quantity, scales, rounding.
* Charge models (``Standard`` .. ``Dynamic``), ``Filter``, ``PriceWindow``,
  ``ChargeSpec`` and ``SubscriptionSpec``.

Output side: ``RatedLine`` (one per subscription x charge x filter bucket x
group x price window), ``InAdvanceFee`` (one per event of a pay-in-advance
charge), ``Unrated`` (a subscription left out, with the reason) and
``RateResult`` holding them, in a canonical order so that two engines (or
two runs) can be compared with ``==``.
"""

from __future__ import annotations

from decimal import Decimal
from collections.abc import Sequence
from typing import Optional, Union

import attrs

AGGREGATIONS = ("count", "sum", "max", "latest", "unique_count", "weighted_sum")
END_REASON = "end_reason"


def _dec(v) -> Decimal:
    if isinstance(v, float):
        raise TypeError("floats never become quantities or money; pass a Decimal or str")
    return v if isinstance(v, Decimal) else Decimal(v)


def _opt_dec(v):
    return None if v is None else _dec(v)


# ---------------------------------------------------------------- expressions


@attrs.frozen
class Prop:
    name: str


@attrs.frozen
class Const:
    value: Decimal = attrs.field(converter=_dec)


@attrs.frozen
class Add:
    left: "Expr"
    right: "Expr"


@attrs.frozen
class Sub:
    left: "Expr"
    right: "Expr"


@attrs.frozen
class Mul:
    left: "Expr"
    right: "Expr"


@attrs.frozen
class Div:
    left: "Expr"
    right: "Expr"  # must fold to a non-zero constant


Expr = Union[Prop, Const, Add, Sub, Mul, Div]


@attrs.frozen
class PerEvent:
    """Round property ``prop`` of each event (in the property's own unit)."""

    prop: str
    increment: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    minimum: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    maximum: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)


@attrs.frozen
class Utilization:
    prop: str = "avg_utilization"
    floor: Decimal = attrs.field(default=Decimal(0), converter=_dec)
    ceiling: Decimal = attrs.field(default=Decimal(1), converter=_dec)


@attrs.frozen
class MetricRounding:
    function: str = "round"  # round (half-up) | ceil | floor
    precision: int = 0  # may be negative: tens, hundreds


@attrs.frozen
class MetricSpec:
    """A billable metric.

    ``expr`` is the quantity (``field`` is shorthand for ``Prop(field)``); for
    ``unique_count`` ``field`` names the string id property, for ``count``
    neither is needed.  ``unit_scale`` multiplies the aggregated units (e.g.
    ``1/3600`` for seconds -> hours; may also be written as a ``Div`` in
    ``expr``).  ``property_scales`` gives each property's fixed-point decimal
    exponent (``gpu_count: -3`` = milli-GPU); the engine goes finer on its own
    when the data needs it, never coarser.
    """

    code: str
    event_code: str
    aggregation: str
    expr: Optional[Expr] = None
    field: Optional[str] = None
    unit_scale: Decimal = attrs.field(default=Decimal(1), converter=_dec)
    per_event: tuple = ()
    recurring: bool = False
    rounding: Optional[MetricRounding] = None
    property_scales: dict = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}")
        if self.recurring and self.aggregation in ("count", "max", "latest"):
            raise ValueError(f"{self.aggregation} metrics cannot be recurring")
        if self.aggregation in ("sum", "max", "latest", "weighted_sum"):
            if self.quantity() is None:
                raise ValueError(f"{self.aggregation} metric {self.code!r} needs a field or expr")
        if self.aggregation == "unique_count" and not self.field:
            raise ValueError(f"unique_count metric {self.code!r} needs a field")

    def quantity(self) -> Optional[Expr]:
        if self.aggregation in ("count", "unique_count"):
            return None
        if self.expr is not None:
            return self.expr
        return Prop(self.field) if self.field else None


# --------------------------------------------------------------- charge models


@attrs.frozen
class Tier:
    from_value: Decimal = attrs.field(converter=_dec)
    to_value: Optional[Decimal] = attrs.field(converter=_opt_dec)
    per_unit: Decimal = attrs.field(default=Decimal(0), converter=_dec)  # rate in % for graduated_percentage
    flat: Decimal = attrs.field(default=Decimal(0), converter=_dec)


@attrs.frozen
class Standard:
    amount: Decimal = attrs.field(default=Decimal(0), converter=_dec)


@attrs.frozen
class Graduated:
    tiers: tuple = (Tier(0, None),)


@attrs.frozen
class Volume:
    tiers: tuple = (Tier(0, None),)


@attrs.frozen
class Package:
    amount: Decimal = attrs.field(default=Decimal(0), converter=_dec)
    size: int = 1
    free_units: int = 0


@attrs.frozen
class Percentage:
    rate: Decimal = attrs.field(default=Decimal(0), converter=_dec)  # percent: "1.3" = 1.3 %
    fixed_amount: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    free_events: Optional[int] = None
    free_amount: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    min_per_event: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    max_per_event: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)


@attrs.frozen
class GraduatedPercentage:
    tiers: tuple = (Tier(0, None),)  # Tier.per_unit is the rate in percent


@attrs.frozen
class Dynamic:
    """amount = sum of the events' precise_total_amount_cents / 100."""


Model = Union[Standard, Graduated, Volume, Package, Percentage, GraduatedPercentage, Dynamic]


# --------------------------------------------------------------------- charges


@attrs.frozen
class PriceWindow:
    """Events with ``from_ms <= timestamp < to_ms`` are priced by ``model``
    on a line of their own (spot / time-varying prices).  First match wins."""

    from_ms: int
    to_ms: int
    model: Model
    source: Optional[str] = attrs.field(default=None, eq=False)  # where `model` was written (explain)


def canonical_filter(values: dict) -> tuple:
    """A filter's one canonical form: ((key, (value, ...)), ...), keys and each
    key's values sorted.  It identifies a filter bucket (compile, plan keys),
    and is what lines, explain and reports show (``Filter.canonical``)."""
    return tuple(sorted((k, tuple(sorted(v))) for k, v in values.items()))


@attrs.frozen
class Filter:
    """key -> allowed string values (AND across keys, OR within a key)."""

    values: dict = attrs.field(hash=False)
    model: Model
    windows: tuple = ()
    source: Optional[str] = attrs.field(default=None, eq=False)  # where `model` was written (explain)

    def __attrs_post_init__(self):
        object.__setattr__(self, "values", {k: frozenset(v) for k, v in self.values.items()})

    @property
    def canonical(self) -> tuple:
        """``canonical_filter(self.values)``."""
        return canonical_filter(self.values)


def match_order(filters) -> list[int]:
    """The order in which an event tries a charge's filters: most keys first,
    ties in written order; the first that allows the event is its bucket."""
    return sorted(range(len(filters)), key=lambda i: (-len(filters[i].values), i))


@attrs.frozen
class MoneyRounding:
    mode: str = "ROUND_HALF_UP"
    quantum: Decimal = attrs.field(default=Decimal("0.01"), converter=_dec)


@attrs.frozen
class ChargeSpec:
    id: str
    metric: MetricSpec
    model: Model = Standard()
    filters: tuple = ()
    group_by: tuple = ()
    pay_in_advance: bool = False
    prorated: bool = False
    min_amount: Optional[Decimal] = attrs.field(default=None, converter=_opt_dec)
    money_rounding: MoneyRounding = MoneyRounding()
    windows: tuple = ()  # windows of the default bucket
    utilization: Optional[Utilization] = None
    source: Optional[str] = attrs.field(default=None, eq=False)  # where `model` was written (explain)

    def bucket_model(self, bucket: Optional[int]) -> Model:
        return self.model if bucket is None else self.filters[bucket].model

    def bucket_windows(self, bucket: Optional[int]) -> tuple:
        return self.windows if bucket is None else self.filters[bucket].windows

    def models(self):
        """Every model of the charge: its own, its windows', its filters' and theirs."""
        yield self.model
        for w in self.windows:
            yield w.model
        for f in self.filters:
            yield f.model
            for w in f.windows:
                yield w.model

    def reads_cents(self) -> bool:
        """A dynamic model prices the events' precise_total_amount_cents."""
        return any(isinstance(x, Dynamic) for x in self.models())


@attrs.frozen
class SubscriptionSpec:
    external_id: str
    charges: tuple
    period_from_ms: int
    period_to_ms: int  # inclusive: the last instant of the period
    started_at_ms: Optional[int] = None
    terminated_at_ms: Optional[int] = None
    timezone: str = "UTC"


# ---------------------------------------------------------------------- output


@attrs.frozen
class TierPart:
    """One tier's share of a line, for explain."""

    index: int
    units: Decimal
    per_unit: Decimal
    flat: Decimal
    amount: Decimal


@attrs.frozen(slots=False)  # a dict class: attrs fills __dict__ directly, 3x faster to build than slots
class RatedLine:
    """One fee line.  ``units`` priced the line (prorated units when the
    charge is prorated); ``full_units`` are the non-prorated units that an
    invoice displays.  ``amount`` is ``precise_amount`` rounded once by
    ``rounding``.  ``kind`` is "usage" or "min_true_up" (spending minimum)."""

    subscription: str
    charge_id: str
    metric: str
    filter: Optional[dict]
    group: dict
    window: Optional[int]
    units: Decimal
    full_units: Decimal
    event_count: int
    unit_price: Decimal
    precise_amount: Decimal
    amount: Decimal
    tiers: tuple
    units_by_end_reason: dict
    count_by_end_reason: dict
    rounding: MoneyRounding
    ignored_count: int = 0
    kind: str = "usage"

    def __getattr__(self, name):
        # Reached only for a name missing from the instance dict: the engine
        # may leave the two end-reason maps to be built on first access (most
        # lines are never asked for them, and they cost more Decimal
        # conversions than the rest of the line).  Reading them, comparing,
        # repr, asdict or evolve all build the same plain dicts.
        if name in ("units_by_end_reason", "count_by_end_reason"):
            d = self.__dict__
            lazy = d.get("_lazy_reasons")
            if lazy is not None:
                units, counts = lazy[0](*lazy[1])
                d["units_by_end_reason"], d["count_by_end_reason"] = units, counts
                d.pop("_lazy_reasons", None)
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self):
        # pickle / copy: the built maps, never the engine's deferred state
        d = dict(self.__dict__)
        if d.pop("_lazy_reasons", None) is not None:
            d["units_by_end_reason"] = self.units_by_end_reason
            d["count_by_end_reason"] = self.count_by_end_reason
        return d

    def __setstate__(self, state):
        self.__dict__.update(state)


@attrs.frozen(slots=False)
class InAdvanceFee:
    subscription: str
    charge_id: str
    metric: str
    filter: Optional[dict]
    group: dict
    window: Optional[int]
    transaction_id: str
    rowid: int
    timestamp_ms: int
    units: Decimal  # billable increment
    precise_amount: Decimal
    amount: Decimal


@attrs.frozen
class Unrated:
    """A subscription left out of a run: none of its lines or fees are in
    the result, and ``reason`` (one line) says why."""

    subscription: str
    charge_id: Optional[str]
    metric: Optional[str]
    reason: str


class NotRated(Exception):
    """Raised inside an engine for one subscription; the run goes on and
    reports ``unrated`` (an ``Unrated``)."""

    def __init__(self, unrated: Unrated):
        super().__init__(unrated.reason)
        self.unrated = unrated


@attrs.frozen
class RateResult:
    """A run's priced lines, its pay-in-advance fees and the subscriptions it
    could not rate.  ``in_advance`` is a sequence of ``InAdvanceFee``: the fast
    engine's ``pricing.fees.Fees`` keeps them as int64 columns and builds a fee
    object only when one is read; it compares equal to the tuple of the same fees."""

    lines: tuple
    in_advance: Sequence = ()
    unrated: tuple = ()  # Unrated values, in the order of the subscriptions given
