"""Lago plans and their charges -> `plan` blocks.

| Lago                                      | .bill                                           |
| ----------------------------------------- | ----------------------------------------------- |
| `interval`, subscription `billing_time`   | `billing monthly calendar`                      |
| `amount_cents` + `pay_in_advance`         | `fee 100.00 in advance`                         |
| `usage_thresholds`                        | `progressive billing at 100.00, every 50.00`    |
| `minimum_commitment`                      | written on each contract (`commit ... per period, true-up each period`) |
| charge filters                            | `where key in ("a", "b") PRICE`                 |
| `pricing_group_keys` / `grouped_by`       | `group by a, b`                                 |
| `pay_in_advance` / `prorated`             | `in advance` / `prorated`                       |
| `min_amount_cents`                        | `minimum spend 12.00`                           |

Unsupported (errors): trial periods, `bill_charges_monthly` /
`bill_fixed_charges_monthly`, fixed charges, the semiannual interval,
`custom` charges, `invoiceable: false`, `regroup_paid_fees`, custom pricing
units, group keys that differ between a charge and its filters.
`presentation_group_keys` only change Lago's display: a warning. The taxes
of a plan, a charge or a minimum commitment are kept in `PlanInfo.taxes` and
compared with each contract's entity (`entities`).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.dsl import ast
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.metrics import MetricInfo
from gpubill.lago.importer.prices import MODELS, amount, number, price

INTERVALS = ("weekly", "monthly", "quarterly", "yearly")
ALL_VALUES = "__ALL_FILTER_VALUES__"


@attrs.frozen
class PlanInfo:
    code: str
    name: str
    currency: str
    commitment: Decimal | None
    charges: dict = attrs.field(factory=dict)  # billable metric code -> the keys of its charges
    taxes: tuple = ()  # (At, Lago tax list) of the plan, its charges and its minimum commitment


def _tax_list(d: dict, at: At) -> tuple:
    """A Lago object's own tax list ((At, list),) -- a response's `taxes` or a creation's `tax_codes` -- or ()."""
    for key in ("taxes", "tax_codes"):
        if d.get(key):
            return ((at / key, d[key]),)
    return ()


@attrs.frozen
class _Draft:
    """A converted charge before it is laid out: the comments before it and before each of its filters."""

    notes: tuple
    charge: ast.Charge
    filter_notes: tuple  # per filter: its comment or None
    metric_code: str
    taxes: tuple  # _tax_list of the charge


def convert_plan(data: dict, at: At, name: str, anchor: str, metrics: dict, ctx: Ctx, lay: Layout,
                 note: str | None = None) -> PlanInfo | None:
    """The plan's info; its `plan` block laid out in `lay` (None, and nothing laid out, on error)."""
    start = len(ctx.diags)
    code = data.get("code")
    try:
        cur = V.currency(data.get("amount_currency"), "amount_currency")
    except V.BadValue as e:
        ctx.invalid(at / "amount_currency", str(e))
        return None
    interval = data.get("interval")
    if interval not in INTERVALS:
        if interval == "semiannual":
            ctx.error(at / "interval", "the semiannual interval is not supported",
                      "the .bill language bills weekly, monthly, quarterly or yearly")
        else:
            ctx.invalid(at / "interval", f"unknown interval {interval!r}")
    if data.get("trial_period"):
        ctx.error(at / "trial_period", f"trial periods are not supported (this plan has {data['trial_period']} days)",
                  "remove the trial in Lago, or give the first period's fee back as a credit on the contract")
    for key in ("bill_charges_monthly", "bill_fixed_charges_monthly"):
        if data.get(key):
            ctx.error(at / key, f"{key} is not supported",
                      "the .bill language bills charges on the plan's own interval; split the plan into a yearly "
                      "fee plan and a monthly usage plan")
    if data.get("fixed_charges"):
        ctx.error(at / "fixed_charges", "fixed charges are not supported",
                  "fold a fixed recurring amount into the plan fee, or leave it in Lago")
    if data.get("entitlements"):
        ctx.warn(at / "entitlements", "entitlements do not change amounts and are not imported")

    notes = [f"Lago plan {V.string(str(code))}" + (f": {V.comment(data['name'])}" if data.get("name") else "")]
    if note:
        notes.append(note)
    if data.get("description"):
        notes.append(V.comment(data["description"]))
    minor = V.minor_unit(cur)
    # Explicit, so the money rounding never depends on the engine's own currency table.
    rounding = ast.MoneyRounding("half_up", number(Decimal(1).scaleb(-minor))) if minor != 2 else None
    fee = _money(data, "amount_cents", cur, at, ctx)
    fee = ast.Fee(amount(fee), "advance" if data.get("pay_in_advance") else "arrears") if fee else None
    progressive = thresholds(data.get("usage_thresholds"), cur, at / "usage_thresholds", ctx)
    commitment = None
    taxes = _tax_list(data, at)
    mc = data.get("minimum_commitment")
    if mc and not isinstance(mc, dict):
        ctx.invalid(at / "minimum_commitment", "minimum_commitment must be an object with amount_cents")
    elif mc:
        commitment = _money(mc, "amount_cents", cur, at / "minimum_commitment", ctx)
        taxes += _tax_list(mc, at / "minimum_commitment")
    commitment_note = (f"minimum commitment {V.num(commitment)} {cur} per period: on each contract of this plan"
                       if commitment else None)

    keys: set[str] = set()
    charges = data.get("charges") or []
    if not isinstance(charges, list):
        ctx.invalid(at / "charges", "charges must be a list")
        charges = []
    drafts = [_charge(ch, at / "charges" / i, cur, metrics, keys, ctx) for i, ch in enumerate(charges)]
    if commitment and not fee and not charges:
        ctx.error(at / "minimum_commitment", "a minimum commitment on a plan with neither a fee nor charges is "
                  "not supported", "in gpubill a commitment is trued up against the plan's fees: give the plan "
                  "its fee (amount_cents) or its charges")
    if ctx.errors_since(start):
        return None
    for n in notes:
        lay.note(n)
    head = lay.at()
    clauses = {"currency": ast.Ref(cur, span=lay.at())}
    if rounding:
        clauses["rounding"] = attrs.evolve(rounding, span=lay.at())
    clauses["billing"] = ast.Billing(interval, anchor, span=lay.at())
    if fee:
        clauses["fee"] = attrs.evolve(fee, span=lay.at())
    if progressive:
        clauses["progressive"] = attrs.evolve(progressive, span=lay.at())
    if commitment_note:
        lay.note(commitment_note)
    clauses["charges"] = tuple(_lay_out_charge(d, lay) for d in drafts if d is not None)
    lay.blocks.append(ast.Plan(ast.Ref(name), **clauses, span=lay.close(head)))
    charge_keys: dict[str, tuple] = {}
    for d in drafts:
        if d is not None:
            key = (d.charge.label or d.charge.metric).name
            charge_keys[d.metric_code] = charge_keys.get(d.metric_code, ()) + (key,)
            taxes += d.taxes
    return PlanInfo(str(code), name, cur, commitment or None, charge_keys, taxes)


def _lay_out_charge(d: _Draft, lay: Layout) -> ast.Charge:
    """The charge with the positions of its comments and clauses, in the order the formatter prints them."""
    for n in d.notes:
        lay.note(n)
    head = lay.at()
    c = d.charge
    group_by = (attrs.evolve(c.group_by[0], span=lay.at()),) + c.group_by[1:] if c.group_by else ()
    filters = []
    for w, note in zip(c.filters, d.filter_notes):
        if note:
            lay.note(note)
        filters.append(attrs.evolve(w, span=lay.at()))
    minimum = attrs.evolve(c.minimum_spend, span=lay.at()) if c.minimum_spend else None
    return attrs.evolve(c, group_by=group_by, filters=tuple(filters), minimum_spend=minimum, span=lay.close(head))


def _money(d: dict, key: str, cur: str, at: At, ctx: Ctx) -> Decimal | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        value = V.cents(v, cur, key)
    except V.BadValue as e:
        ctx.invalid(at / key, str(e))
        return None
    return value


def thresholds(items, cur: str, at: At, ctx: Ctx) -> ast.Progressive | None:
    """Lago usage thresholds -> `progressive billing at A, B, every R`."""
    if not items:
        return None
    if not isinstance(items, list):
        ctx.invalid(at, "usage_thresholds must be a list of objects {amount_cents, recurring}")
        return None
    fixed, every = [], []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            ctx.invalid(at / i, "a usage threshold must be an object {amount_cents, recurring}")
            continue
        value = _money(t, "amount_cents", cur, at / i, ctx)
        if value is None:
            continue
        (every if t.get("recurring") else fixed).append(value)
    if len(every) > 1:
        ctx.invalid(at, "Lago allows at most one recurring usage threshold")
    if len(set(fixed)) != len(fixed):
        ctx.invalid(at, "two usage thresholds have the same amount", "Lago's thresholds are distinct amounts")
    if not fixed and not every:
        return None
    return ast.Progressive(tuple(amount(a) for a in sorted(fixed)), tuple(amount(a) for a in every))


def _charge(ch, at: At, cur: str, metrics: dict, keys: set, ctx: Ctx) -> _Draft | None:
    if not isinstance(ch, dict):
        ctx.invalid(at, "a charge must be an object")
        return None
    model = ch.get("charge_model")
    if model not in MODELS:
        if model == "custom":
            ctx.error(at / "charge_model", 'charge model "custom" is not supported',
                      "custom charges run a script inside Lago; price the metric with one of standard, graduated, "
                      "volume, package, percentage, graduated_percentage or dynamic")
        else:
            ctx.invalid(at / "charge_model", f"unknown charge model {model!r}")
        return None
    code = ch.get("billable_metric_code")
    if code is None and isinstance(ch.get("billable_metric"), dict):
        code = ch["billable_metric"].get("code")
    metric: MetricInfo | None = metrics.get(code) if isinstance(code, str) else None
    if metric is None:
        if not isinstance(code, str) or code not in metrics:  # a metric that failed to convert has already said why
            ctx.error(at, f"the billable metric {code!r} is not among the imported files",
                      "export it too: GET /api/v1/billable_metrics/CODE, and pass the file to the import",
                      rule="lago-missing")
        return None
    for key, what in (("regroup_paid_fees", "regroup_paid_fees"), ("applied_pricing_unit", "custom pricing units")):
        if ch.get(key) not in (None, False, "", {}):
            ctx.error(at / key, f"{what} is not supported",
                      "gpubill invoices every pay-in-advance fee as it is rated" if key == "regroup_paid_fees"
                      else "price the charge in the plan's currency")
    if ch.get("invoiceable") is False:
        ctx.error(at / "invoiceable", "non-invoiceable charges (invoiceable: false) are not supported",
                  "gpubill puts every pay-in-advance fee on an invoice")
    props = ch.get("properties") or {}
    groups = _group_keys(props, at / "properties", ctx)

    key = metric.name
    label = None
    if key in keys:
        n = 2
        while f"{metric.name}_{n}" in keys:
            n += 1
        label = key = f"{metric.name}_{n}"
    keys.add(key)

    head = price(model, props, metric, at / "properties", ctx)
    for g in groups:
        metric.add_dimension(g)
    wheres, filter_notes = [], []
    seen: dict = {}
    filters = ch.get("filters") or []
    if not isinstance(filters, list):
        ctx.invalid(at / "filters", "filters must be a list of objects")
        filters = []
    for j, f in enumerate(filters):
        where, cond, note = _filter(f, at / "filters" / j, model, metric, groups, ctx)
        if cond is not None and cond in seen:
            # Lago prices an event with the oldest of identical filters; the copy never applies.
            ctx.warn(at / "filters" / j, f"this filter matches the same values as filters[{seen[cond]}], which "
                     "Lago applies first; it is not imported", "delete the duplicate filter in Lago")
            continue
        if cond is not None:
            seen[cond] = j
        if where is not None:
            wheres.append(where)
            filter_notes.append(note)
    minimum = None
    min_cents = ch.get("min_amount_cents")
    if min_cents:
        try:
            minimum = amount(V.cents(min_cents, cur, "min_amount_cents"))
        except V.BadValue as e:
            ctx.invalid(at / "min_amount_cents", str(e))
    if head is None:
        return None
    title = f"Lago charge {V.comment(ch.get('lago_id') or '')}".rstrip()
    if ch.get("invoice_display_name"):
        title += f" {V.string(V.comment(ch['invoice_display_name']))}"
    charge = ast.Charge(ast.Ref(metric.name), head, label=ast.Ref(label) if label else None, filters=tuple(wheres),
                        group_by=tuple(ast.Ref(g) for g in groups),
                        timing="advance" if ch.get("pay_in_advance") else None, minimum_spend=minimum,
                        prorated=bool(ch.get("prorated")))
    return _Draft((title,) if title != "Lago charge" else (), charge, tuple(filter_notes), code, _tax_list(ch, at))


def _group_keys(props, at: At, ctx: Ctx) -> tuple:
    if not isinstance(props, dict):
        return ()
    if props.get("presentation_group_keys"):
        ctx.warn(at / "presentation_group_keys", "presentation group keys only change how Lago displays "
                 "the invoice; they are not imported")
    keys = props.get("pricing_group_keys") or props.get("grouped_by") or []
    which = "pricing_group_keys" if props.get("pricing_group_keys") else "grouped_by"
    if not isinstance(keys, list):
        ctx.invalid(at / which, "group keys must be a list of property names")
        return ()
    for k in keys:
        if not V.is_name(k):
            ctx.error(at / which, f"the group key {k!r} cannot be named in a .bill file",
                      "property names are [A-Za-z_][A-Za-z0-9_]*; rename it in Lago and in the event senders")
            return ()
    return tuple(keys)


def _filter(f, at: At, model: str, metric: MetricInfo, groups: tuple,
            ctx: Ctx) -> tuple[ast.WherePrice | None, tuple | None, str | None]:
    """The filter's `where` price, its condition (sorted key -> sorted values) and the comment before it;
    (None, None, None) on error."""
    if not isinstance(f, dict):
        ctx.invalid(at, "a charge filter must be an object {values, properties}")
        return None, None, None
    vals = f.get("values")
    if not isinstance(vals, dict) or not vals:
        ctx.invalid(at / "values", "a charge filter needs values: {key: [value, ...]}")
        return None, None, None
    matches = []
    cond = []
    for key, allowed in vals.items():
        vat = at / "values" / key
        if key not in metric.dimensions:
            ctx.invalid(vat, f"the filter key {key!r} is not a filter of the metric {metric.code!r}",
                        f"the metric declares: {', '.join(metric.dimensions) or 'no filters'}")
            continue
        if not isinstance(allowed, list) or not allowed or not all(isinstance(v, str) for v in allowed):
            ctx.invalid(vat, "filter values must be a non-empty list of strings")
            continue
        if ALL_VALUES in allowed:
            allowed = list(metric.dimensions[key])
            if not allowed:
                ctx.invalid(vat, f"{ALL_VALUES} needs values declared on the metric for {key!r}")
                continue
        undeclared = [v for v in allowed if metric.dimensions[key] and v not in metric.dimensions[key]]
        if undeclared:
            ctx.invalid(vat, f"{', '.join(map(repr, undeclared))} is not a value of {key!r} on the metric "
                        f"{metric.code!r}", "Lago only accepts filter values declared on the billable metric")
            continue
        cond.append((key, tuple(sorted(set(allowed)))))
        try:
            values = tuple(ast.Str(V.writable(v)) for v in allowed)
            matches.append(ast.Match(ast.Ref(key), values, "=" if len(values) == 1 else "in"))
        except V.BadValue as e:
            ctx.error(vat, str(e))
    props = f.get("properties") or {}
    mine = _group_keys(props, at / "properties", ctx)
    if mine != groups:
        ctx.error(at / "properties", f"this filter groups by {list(mine)} but its charge groups by {list(groups)}",
                  "the .bill language groups a whole charge by the same keys; give the charge and every filter "
                  "the same pricing_group_keys in Lago")
    p = price(model, props, metric, at / "properties", ctx)
    if p is None or len(matches) != len(vals):
        return None, None, None
    note = f"filter {V.string(V.comment(f['invoice_display_name']))}" if f.get("invoice_display_name") else None
    return ast.WherePrice(ast.Condition(tuple(matches)), p), tuple(sorted(cond)), note
