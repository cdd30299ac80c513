"""Import Lago objects (API JSON) into `.bill` source text.

`import_lago(sources, out_dir) -> ImportResult`: pure. `sources` maps a JSON
file's path to its text; the result holds the generated files (path -> text:
`metrics.bill`, `plans.bill`, `entities.bill`, `contracts.bill` under
`out_dir`, each only when it has blocks) and the diagnostics. When any
diagnostic is an error the caller must write nothing.

Guarantees:
* amounts are exact: decimal strings stay as written, cents become the
  currency's major unit by its ISO 4217 minor unit, nothing is rounded;
* a Lago feature the language cannot express is an error naming the file,
  the JSON path (`plans[0].charges[2]`) and its line, never an approximation;
* the generated text parses and checks cleanly (it is checked here, and a
  failure is reported as `lago-generated`);
* the output is deterministic: same inputs, same bytes;
* the files are built as `gpubill.dsl.ast` nodes and printed by the
  language's formatter (`layout`): they are in `gpubill fmt`'s canonical
  form, and no `.bill` syntax is written here.

The mapping, object by object, is documented in `metrics`, `prices`,
`plans`, `entities` (billing entities, taxes), `contracts` and `terms`
(coupons, wallets); `objects` says which JSON shapes are accepted.
"""

from __future__ import annotations

import copy
import os

import attrs

from gpubill.dsl.diagnostics import Diagnostic, dedupe, error
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer import terms as T
from gpubill.lago.importer.contracts import Setup, convert_contract, customer_currency, skip_reason
from gpubill.lago.importer.entities import Entities, Taxes
from gpubill.lago.importer.jsonpos import InvalidJson, load
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.metrics import convert_metric
from gpubill.lago.importer.objects import Obj, collect
from gpubill.lago.importer.plans import convert_plan
from gpubill.dsl.limits import MAX_SOURCE_BYTES

FILES = ("metrics.bill", "plans.bill", "entities.bill", "contracts.bill")


@attrs.frozen
class ImportResult:
    files: dict  # output path -> text
    diagnostics: tuple

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def import_lago(sources: dict[str, str], out_dir: str = "") -> ImportResult:
    ctx = Ctx()
    objs: list[Obj] = []
    for path, text in sources.items():
        try:
            value, loc = load(text, path)
        except InvalidJson as e:
            from gpubill.dsl.ast import Span

            span = Span(path, e.line, e.col, e.line, e.col + 1)
            message = f"invalid JSON: {e.message}" if e.rule == "lago-invalid-json" else e.message
            ctx.diags.append(error(e.rule, message, span))
            continue
        objs.extend(collect(value, At(loc), ctx))
    files = _convert(objs, ctx, [os.path.basename(p) for p in sources])
    out = {os.path.join(out_dir, name): text for name, text in files.items()}
    diags = list(ctx.diags) + _too_large(out)
    if not any(d.is_error for d in diags) and out:
        diags.extend(_self_check(out))
    return ImportResult(out if not any(d.is_error for d in diags) else {}, tuple(dedupe(diags)))


def _too_large(files: dict[str, str]) -> list[Diagnostic]:
    """A generated file that `gpubill check` would refuse for its size is an error here already."""
    out = []
    for path, text in files.items():
        size = len(text.encode("utf-8"))
        if size > MAX_SOURCE_BYTES:
            out.append(error(
                "lago-too-large",
                f"{path} would be {size / 2**20:.1f} MiB; a .bill file may be at most {MAX_SOURCE_BYTES // 2**20} MiB",
                None,
                hints=("import the objects in several runs, each into a directory of its own",),
            ))
    return out


def _self_check(files: dict[str, str]) -> list[Diagnostic]:
    """The generated text must check; anything else is a bug in this importer."""
    from gpubill.dsl.check import check_sources

    _, diags = check_sources(files)
    out = []
    for d in diags:
        if d.is_error:
            out.append(error("lago-generated", f"the generated .bill does not check: {d.message} "
                             f"(at {d.span}); this is a bug in `gpubill import lago`, please report it", None))
        else:
            out.append(d)
    return out


def _unique(objs: list[Obj], kind: str, key: str, ctx: Ctx) -> dict[str, Obj]:
    table: dict[str, Obj] = {}
    for o in objs:
        if o.kind != kind:
            continue
        code = o.data.get(key)
        if not isinstance(code, str) or not code:
            ctx.invalid(o.at / key, f"a {kind.replace('_', ' ')} needs its {key} (a non-empty string)")
            continue
        problem = V.unwritable(code)
        if problem:
            ctx.invalid(o.at / key, f"the {key} {problem}")
            continue
        if code in table:
            if table[code].data != o.data:
                ctx.error(o.at / key, f"two different {kind.replace('_', ' ')}s have the {key} {code!r}",
                          f"the first is at {table[code].at.loc.path} {table[code].at.where()}; keep one",
                          rule="lago-duplicate")
            continue
        table[code] = o
    return table


def _embedded(objs: list[Obj]) -> list[Obj]:
    """Plans embedded in subscriptions and metrics embedded in charges, as objects of their own."""
    more = []
    for o in objs:
        if o.kind == "subscription" and isinstance(o.data.get("plan"), dict):
            more.append(Obj("plan", o.data["plan"], o.at / "plan"))
    for o in objs + more:
        if o.kind == "plan" and isinstance(o.data.get("charges"), list):
            for i, ch in enumerate(o.data["charges"]):
                bm = ch.get("billable_metric") if isinstance(ch, dict) else None
                if isinstance(bm, dict) and "aggregation_type" in bm:
                    more.append(Obj("billable_metric", bm, o.at / "charges" / i / "billable_metric"))
    return more


def _convert(objs: list[Obj], ctx: Ctx, names: list[str]) -> dict[str, str]:
    metrics_in = _unique(objs, "billable_metric", "code", ctx)
    plans_in = _unique(objs, "plan", "code", ctx)
    customers = _unique(objs, "customer", "external_id", ctx)
    subs = _unique(objs, "subscription", "external_id", ctx)
    # Embedded copies fill in only what was not exported on its own.
    for o in _embedded(list(metrics_in.values()) + list(plans_in.values()) + list(subs.values())):
        table = metrics_in if o.kind == "billable_metric" else plans_in
        code = o.data.get("code")
        if isinstance(code, str) and code not in table:
            table[code] = o

    metric_names = V.Namer("metric")
    metrics: dict = {}
    for code, o in metrics_in.items():
        metrics[code] = convert_metric(o, metric_names(code), ctx)  # None: failed, already reported

    # Plan variants: the billing anchor comes from the subscriptions (Lago's billing_time),
    # and plan_overrides make a plan of their own for that subscription.
    plan_names = V.Namer("plan")
    variants: dict[tuple, tuple] = {}  # (code, anchor, sub id or None) -> (data, at, name, note)
    sub_variant: dict[str, tuple] = {}
    live_subs = []
    for ext, s in subs.items():
        reason = skip_reason(s)
        if reason:
            ctx.warn(s.at / "status", reason)
            continue
        code = s.data.get("plan_code")
        if not isinstance(code, str) or code not in plans_in:
            ctx.error(s.at / "plan_code", f"the plan {code!r} is not among the imported files",
                      "export it too: GET /api/v1/plans/CODE, and pass the file to the import", rule="lago-missing")
            continue
        anchor = s.data.get("billing_time") or "calendar"
        if anchor not in ("calendar", "anniversary"):
            ctx.invalid(s.at / "billing_time", f"unknown billing_time {anchor!r}", "expected calendar or anniversary")
            continue
        ov = s.data.get("plan_overrides")
        key = (code, anchor, ext if ov else None)
        if key not in variants:
            base = plans_in[code]
            data, note = base.data, None
            if ov:
                data = _apply_overrides(base.data, ov, s.at / "plan_overrides", ctx)
                note = f"plan {V.string(code)} with the plan_overrides of subscription {V.string(ext)}"
            variants[key] = (data, base.at, note)
        sub_variant[ext] = key
        live_subs.append(s)
    for code in plans_in:  # every plan under its own name, even when only overridden copies are used
        if not any(k[0] == code and k[2] is None for k in variants):
            variants[(code, "calendar", None)] = (plans_in[code].data, plans_in[code].at, None)

    header = "Generated by `gpubill import lago` from " + ", ".join(sorted(set(names))) + "."
    plans: dict[tuple, object] = {}
    plan_file = _laid_out("plans.bill", header)
    for key in sorted(variants, key=lambda k: (list(plans_in).index(k[0]), k[2] is not None, k[1] != "calendar", k[2] or "")):
        code, anchor, ext = key
        data, at, note = variants[key]
        if not any(k[0] == code for k in plans):
            name = plan_names(code)
        else:
            name = plan_names.fresh(f"{plan_names(code)}_{ext}" if ext else f"{plan_names(code)}_{anchor}")
        info = convert_plan(data, at, name, anchor, metrics, ctx, plan_file, note)
        plans[key] = info
        if info is not None and info.commitment and not any(v == key for v in sub_variant.values()):
            mc_at = at / "minimum_commitment"
            ctx.warn(mc_at, "the minimum commitment is written on each contract of the plan, and no subscription "
                     "of this plan is imported", "import its subscriptions too, or add `commit` to its contracts",
                     rule="lago-ignored")

    taxes = Taxes(_unique(objs, "tax", "code", ctx), ctx)
    entities = Entities(_laid_out("entities.bill", header), _unique(objs, "billing_entity", "code", ctx), taxes, ctx)
    contracts = _laid_out("contracts.bill", header)
    contract_names = V.Namer("sub")
    live_subs = [s for s in live_subs if plans.get(sub_variant[s.data["external_id"]]) is not None]
    coupons, wallets = _customer_terms(objs, live_subs, ctx)
    for s in live_subs:
        ext = s.data["external_id"]
        info = plans[sub_variant[ext]]
        cust_id = s.data.get("external_customer_id")
        cust = customers.get(cust_id) if isinstance(cust_id, str) else None
        if cust is None:
            ctx.warn(s.at / "external_customer_id",
                     f"the customer {s.data.get('external_customer_id')!r} is not among the imported files; its "
                     "name, timezone, grace period and billing entity are not imported",
                     "export it too: GET /api/v1/customers/EXTERNAL_ID", rule="lago-missing")
        else:
            customer_currency(cust, ctx)
        setup = Setup(entities, taxes, tuple(coupons.get(ext, ())), tuple(wallets.get(ext, ())))
        contract = convert_contract(s, contract_names(ext), cust, info, setup, contracts, ctx)
        if contract is not None:
            contracts.blocks.append(contract)
    for ext, c in customers.items():
        if not any(s.data.get("external_customer_id") == ext for s in subs.values()):
            ctx.warn(c.at, f"the customer {ext!r} has no imported subscription; a contract needs one, so it "
                     "is not imported", "export its subscriptions too: GET /api/v1/subscriptions?external_customer_id=...")

    metric_file = _laid_out("metrics.bill", header)
    metric_file.blocks.extend(m.lay_out(metric_file) for m in metrics.values() if m is not None)
    return {layout.path: layout.text() for layout in (metric_file, plan_file, entities.layout, contracts)
            if layout.blocks}


def _customer_terms(objs: list[Obj], subs: list[Obj], ctx: Ctx) -> tuple[dict, dict]:
    """Applied coupons (with their coupon) and wallets, by the external id of the subscription they go to."""
    coupon_of = _unique(objs, "coupon", "code", ctx)
    coupons: dict[str, list] = {}
    wallets: dict[str, list] = {}
    for o in objs:
        if o.kind not in ("applied_coupon", "wallet"):
            continue
        if o.data.get("status") == "terminated":
            ctx.warn(o.at / "status", f"a terminated {o.kind.replace('_', ' ')} no longer applies; it is not imported")
            continue
        coupon = None
        if o.kind == "applied_coupon":
            code = o.data.get("coupon_code")
            coupon = coupon_of.get(code) if isinstance(code, str) else None
            if coupon is None:
                ctx.error(o.at / "coupon_code", f"the coupon {o.data.get('coupon_code')!r} is not among the "
                          "imported files", "export it too: GET /api/v1/coupons/CODE", rule="lago-missing")
                continue
        sub = _term_subscription(o, coupon, subs, ctx)
        if sub is None:
            continue
        ext = sub.data["external_id"]
        if coupon is not None:
            coupons.setdefault(ext, []).append((o, coupon))
        else:
            wallets.setdefault(ext, []).append(o)
    for code, c in coupon_of.items():
        if not any(o.kind == "applied_coupon" and o.data.get("coupon_code") == code for o in objs):
            ctx.warn(c.at, f"the coupon {code!r} is applied to no imported customer; it is not imported",
                     "export its applied coupons too: GET /api/v1/applied_coupons?coupon_code[]=CODE")
    return coupons, wallets


def _term_subscription(o: Obj, coupon: Obj | None, subs: list[Obj], ctx: Ctx) -> Obj | None:
    """The one imported subscription an applied coupon or wallet applies to (None, reported, otherwise)."""
    what = o.kind.replace("_", " ")
    cust_id = o.data.get("external_customer_id")
    mine = [s for s in subs if s.data.get("external_customer_id") == cust_id]
    if not mine:
        ctx.error(o.at / "external_customer_id", f"the customer {cust_id!r} of this {what} has no imported "
                  "subscription", "export its subscriptions too: GET /api/v1/subscriptions?external_customer_id=...",
                  rule="lago-missing")
        return None
    plan_codes = T.limited_plans(coupon, ctx)
    if plan_codes:
        on_plan = [s for s in mine if s.data.get("plan_code") in plan_codes]
        if not on_plan:
            ctx.error(o.at / "coupon_code", f"the coupon is limited to the plans {', '.join(map(str, plan_codes))}, "
                      f"and the customer {cust_id!r} is subscribed to {_plans_of(mine)}",
                      "a .bill discount belongs to a contract; apply the coupon in Lago to a customer on that plan")
            return None
        mine = on_plan
    if len(mine) > 1:
        ctx.error(o.at / "external_customer_id", f"the customer {cust_id!r} has {len(mine)} imported subscriptions "
                  f"({_plans_of(mine)}); Lago applies this {what} across them, and a .bill {what} belongs to one "
                  "contract", "import one subscription of the customer, or limit the coupon to one plan in Lago")
        return None
    return mine[0]


def _plans_of(subs: list[Obj]) -> str:
    return ", ".join(sorted({str(s.data.get("plan_code")) for s in subs}))


def _laid_out(name: str, header: str) -> Layout:
    """A generated file's layout, its header comment first."""
    layout = Layout(name)
    layout.note(header, blank_after=True)
    return layout


_PLAN_OVERRIDABLE = ("amount_cents", "amount_currency", "trial_period", "usage_thresholds", "minimum_commitment",
                     "name", "invoice_display_name", "description", "tax_codes", "taxes")
_CHARGE_OVERRIDABLE = ("properties", "filters", "min_amount_cents", "invoice_display_name", "tax_codes", "taxes",
                       "applied_pricing_unit")


def _apply_overrides(plan: dict, ov, at: At, ctx: Ctx) -> dict:
    """A subscription's plan_overrides merged into a copy of its plan (Lago makes a child plan the same way)."""
    if not isinstance(ov, dict):
        ctx.invalid(at, "plan_overrides must be an object")
        return plan
    merged = copy.deepcopy(plan)
    for k in _PLAN_OVERRIDABLE:
        if k in ov:
            merged[k] = copy.deepcopy(ov[k])
    charges = merged.get("charges") or []
    for i, co in enumerate(ov.get("charges") or []):
        cid = co.get("id") if isinstance(co, dict) else None
        target = next((c for c in charges if isinstance(c, dict) and cid and c.get("lago_id") == cid), None)
        if target is None:
            ctx.error(at / "charges" / i / "id", f"the override names charge {cid!r}, which is not a charge "
                      "(lago_id) of the plan", rule="lago-missing")
            continue
        for k in _CHARGE_OVERRIDABLE:
            if k in co:
                target[k] = copy.deepcopy(co[k])
    for k in ov:
        if k not in _PLAN_OVERRIDABLE and k not in ("charges", "metadata", "cascade_updates"):
            ctx.error(at / k, f"overriding {k} is not supported")
    return merged
