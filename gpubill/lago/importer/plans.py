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
units, group keys that differ between a charge and its filters. Taxes and
`presentation_group_keys` are display/tax data: warnings.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.metrics import MetricInfo
from gpubill.lago.importer.prices import MODELS, price

INTERVALS = ("weekly", "monthly", "quarterly", "yearly")
ALL_VALUES = "__ALL_FILTER_VALUES__"


@attrs.frozen
class PlanInfo:
    code: str
    name: str
    currency: str
    commitment: Decimal | None
    lines: tuple


def convert_plan(data: dict, at: At, name: str, anchor: str, metrics: dict, ctx: Ctx,
                 note: str | None = None) -> PlanInfo | None:
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
    for key in ("taxes", "tax_codes"):
        if data.get(key):
            ctx.warn(at / key, "plan taxes are not imported",
                     'taxes belong to the billing entity: tax "VAT" 20% in entities.bill')
    if data.get("entitlements"):
        ctx.warn(at / "entitlements", "entitlements do not change amounts and are not imported")

    lines = [f"# Lago plan {V.string(str(code))}" + (f": {V.comment(data['name'])}" if data.get("name") else "")]
    if note:
        lines.append(f"# {note}")
    if data.get("description"):
        lines.append(f"# {V.comment(data['description'])}")
    lines.append(f"plan {name} {{")
    lines.append(f"  currency {cur}")
    minor = V.minor_unit(cur)
    if minor != 2:
        # Explicit, so the money rounding never depends on the engine's own currency table.
        lines.append(f"  rounding half_up {V.num(Decimal(1).scaleb(-minor))}")
    lines.append(f"  billing {interval} {anchor}")
    fee = _money(data, "amount_cents", cur, at, ctx)
    if fee:
        timing = "advance" if data.get("pay_in_advance") else "arrears"
        lines.append(f"  fee {V.num(fee)} in {timing}")
    progressive = thresholds(data.get("usage_thresholds"), cur, at / "usage_thresholds", ctx)
    if progressive:
        lines.append(f"  {progressive}")
    commitment = None
    mc = data.get("minimum_commitment")
    if mc and not isinstance(mc, dict):
        ctx.invalid(at / "minimum_commitment", "minimum_commitment must be an object with amount_cents")
    elif mc:
        commitment = _money(mc, "amount_cents", cur, at / "minimum_commitment", ctx)
        if commitment:
            lines.append(f"  # minimum commitment {V.num(commitment)} {cur} per period: on each contract of this plan")

    keys: set[str] = set()
    charges = data.get("charges") or []
    if not isinstance(charges, list):
        ctx.invalid(at / "charges", "charges must be a list")
        charges = []
    for i, ch in enumerate(charges):
        lines.extend(_charge(ch, at / "charges" / i, cur, metrics, keys, ctx))
    lines.append("}")
    if ctx.errors_since(start):
        return None
    return PlanInfo(str(code), name, cur, commitment or None, tuple(lines))


def _money(d: dict, key: str, cur: str, at: At, ctx: Ctx) -> Decimal | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        amount = V.cents(v, cur, key)
    except V.BadValue as e:
        ctx.invalid(at / key, str(e))
        return None
    return amount


def thresholds(items, cur: str, at: At, ctx: Ctx) -> str | None:
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
        amount = _money(t, "amount_cents", cur, at / i, ctx)
        if amount is None:
            continue
        (every if t.get("recurring") else fixed).append(amount)
    if len(every) > 1:
        ctx.invalid(at, "Lago allows at most one recurring usage threshold")
    parts = [V.num(a) for a in sorted(fixed)] + [f"every {V.num(a)}" for a in every]
    return "progressive billing at " + ", ".join(parts) if parts else None


def _charge(ch, at: At, cur: str, metrics: dict, keys: set, ctx: Ctx) -> list[str]:
    if not isinstance(ch, dict):
        ctx.invalid(at, "a charge must be an object")
        return []
    model = ch.get("charge_model")
    if model not in MODELS:
        if model == "custom":
            ctx.error(at / "charge_model", 'charge model "custom" is not supported',
                      "custom charges run a script inside Lago; price the metric with one of standard, graduated, "
                      "volume, package, percentage, graduated_percentage or dynamic")
        else:
            ctx.invalid(at / "charge_model", f"unknown charge model {model!r}")
        return []
    code = ch.get("billable_metric_code")
    if code is None and isinstance(ch.get("billable_metric"), dict):
        code = ch["billable_metric"].get("code")
    metric: MetricInfo | None = metrics.get(code) if isinstance(code, str) else None
    if metric is None:
        if not isinstance(code, str) or code not in metrics:  # a metric that failed to convert has already said why
            ctx.error(at, f"the billable metric {code!r} is not among the imported files",
                      "export it too: GET /api/v1/billable_metrics/CODE, and pass the file to the import",
                      rule="lago-missing")
        return []
    for key, what in (("regroup_paid_fees", "regroup_paid_fees"), ("applied_pricing_unit", "custom pricing units")):
        if ch.get(key) not in (None, False, "", {}):
            ctx.error(at / key, f"{what} is not supported",
                      "gpubill invoices every pay-in-advance fee as it is rated" if key == "regroup_paid_fees"
                      else "price the charge in the plan's currency")
    if ch.get("invoiceable") is False:
        ctx.error(at / "invoiceable", "non-invoiceable charges (invoiceable: false) are not supported",
                  "gpubill puts every pay-in-advance fee on an invoice")
    for key in ("taxes", "tax_codes"):
        if ch.get(key):
            ctx.warn(at / key, "charge taxes are not imported", "taxes belong to the billing entity")
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

    head = price(model, props, metric, at / "properties", ctx, "  ")
    body: list[str] = []
    if groups:
        for g in groups:
            metric.add_dimension(g)
        body.append("group by " + ", ".join(groups))
    seen: dict = {}
    filters = ch.get("filters") or []
    if not isinstance(filters, list):
        ctx.invalid(at / "filters", "filters must be a list of objects")
        filters = []
    for j, f in enumerate(filters):
        lines, cond = _filter(f, at / "filters" / j, model, metric, groups, ctx)
        if cond is not None and cond in seen:
            # Lago prices an event with the oldest of identical filters; the copy never applies.
            ctx.warn(at / "filters" / j, f"this filter matches the same values as filters[{seen[cond]}], which "
                     "Lago applies first; it is not imported", "delete the duplicate filter in Lago")
            continue
        if cond is not None:
            seen[cond] = j
        body.extend(lines)
    if ch.get("pay_in_advance"):
        body.append("in advance")
    min_cents = ch.get("min_amount_cents")
    if min_cents:
        try:
            body.append(f"minimum spend {V.num(V.cents(min_cents, cur, 'min_amount_cents'))}")
        except V.BadValue as e:
            ctx.invalid(at / "min_amount_cents", str(e))
    if ch.get("prorated"):
        body.append("prorated")
    if head is None:
        return []
    title = f"  # Lago charge {V.comment(ch.get('lago_id') or '')}".rstrip()
    if ch.get("invoice_display_name"):
        title += f" {V.string(V.comment(ch['invoice_display_name']))}"
    out = [title] if title.strip() != "# Lago charge" else []
    first = f"  charge {metric.name}" + (f" as {label}" if label else "") + f" {head}"
    if not body:
        return out + [first]
    out.append(first + " {")
    out.extend("    " + b for b in body)
    out.append("  }")
    return out


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


def _filter(f, at: At, model: str, metric: MetricInfo, groups: tuple, ctx: Ctx) -> tuple[list[str], tuple | None]:
    """The filter's lines and its condition (sorted key -> sorted values), or ([], None) on error."""
    if not isinstance(f, dict):
        ctx.invalid(at, "a charge filter must be an object {values, properties}")
        return [], None
    vals = f.get("values")
    if not isinstance(vals, dict) or not vals:
        ctx.invalid(at / "values", "a charge filter needs values: {key: [value, ...]}")
        return [], None
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
            if len(allowed) == 1:
                matches.append(f"{key} = {V.string(allowed[0])}")
            else:
                matches.append(f"{key} in (" + ", ".join(V.string(v) for v in allowed) + ")")
        except V.BadValue as e:
            ctx.error(vat, str(e))
    props = f.get("properties") or {}
    mine = _group_keys(props, at / "properties", ctx)
    if mine != groups:
        ctx.error(at / "properties", f"this filter groups by {list(mine)} but its charge groups by {list(groups)}",
                  "the .bill language groups a whole charge by the same keys; give the charge and every filter "
                  "the same pricing_group_keys in Lago")
    p = price(model, props, metric, at / "properties", ctx, "    ")
    if p is None or len(matches) != len(vals):
        return [], None
    out = [f"# filter {V.string(V.comment(f['invoice_display_name']))}"] if f.get("invoice_display_name") else []
    return out + [f"where {' and '.join(matches)} {p}"], tuple(sorted(cond))
