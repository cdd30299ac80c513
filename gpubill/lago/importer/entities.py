"""Lago billing entities and taxes -> `entity` blocks.

| Lago billing entity                                   | .bill                                  |
| ----------------------------------------------------- | -------------------------------------- |
| `code`, `name`                                        | `entity CODE { name "..." }`           |
| `default_currency` (else the customer's currency)     | `currency CUR`                         |
| `timezone`                                            | `timezone "Area/City"`                 |
| `document_number_prefix` (or `invoice_prefix`)        | `invoice prefix "P"`                   |
| `document_numbering` per_customer / per_billing_entity | `numbering per_customer` / `per_entity` |
| `invoice_grace_period` (or its billing_configuration's) | `invoice grace N days`               |
| `taxes` / `tax_codes`, taxes `applied_to_billing_entities_codes` | `tax "NAME" RATE%`          |

A customer without `billing_entity_code` belongs to Lago's default billing
entity: the imported one with `is_default: true`, else one default entity per
currency, `lago_default_<currency>`; the default entity also gets the taxes
`applied_to_organization`. A customer whose currency is not its entity's
`default_currency` gets a copy of the entity in its currency
(`CODE_<CUR>`), since a `.bill` entity invoices in one currency.

Taxes: gpubill taxes every fee of an entity's invoices with the entity's
taxes. Lago also lets a customer, a plan, a charge or a minimum commitment
name taxes that replace the entity's on their fees. Such a list is imported
when it names the same taxes (codes and rates) as the contract's entity, and
is an error (`lago-unsupported`) otherwise: gpubill taxes per entity, so
those customers belong under a billing entity of their own with those taxes.
`eu_tax_management` (taxes chosen per customer country) is an error too.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.dsl import ast
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.objects import Obj

#: Lago's document_numbering -> the `.bill` numbering scheme.
NUMBERING = {"per_customer": "per_customer", "per_billing_entity": "per_entity"}


@attrs.frozen
class TaxInfo:
    code: str
    name: str
    rate: Decimal


TaxSet = frozenset  # of (code, rate): what makes two tax lists the same for amounts


def tax_set(taxes) -> TaxSet:
    return frozenset((t.code, t.rate) for t in taxes)


def describe(taxes: TaxSet) -> str:
    return ", ".join(f"{code} {V.num(rate)}%" for code, rate in sorted(taxes)) or "no tax"


class Taxes:
    """The imported Lago tax objects, by code."""

    def __init__(self, objs: dict[str, Obj], ctx: Ctx) -> None:
        self.by_code: dict[str, TaxInfo] = {}
        self.objs = objs
        for code, o in objs.items():
            info = _tax(o.data, o.at, ctx)
            if info is not None:
                self.by_code[code] = info

    def listed(self, items, at: At, ctx: Ctx) -> tuple[TaxInfo, ...] | None:
        """A Lago list of taxes: embedded tax objects (a response's `taxes`) or codes (`tax_codes`)."""
        if not items:
            return ()
        if not isinstance(items, list):
            ctx.invalid(at, "taxes must be a list of tax objects or tax codes")
            return None
        out = []
        for i, t in enumerate(items):
            if isinstance(t, str):
                info = self.by_code.get(t)
                if info is None and t not in self.objs:  # a tax that failed to convert has said why
                    ctx.error(at / i, f"the tax {t!r} is not among the imported files",
                              "export it too: GET /api/v1/taxes/CODE", rule="lago-missing")
            else:
                info = _tax(t, at / i, ctx)
            if info is None:
                return None
            out.append(info)
        return tuple(out)

    def applied_to(self, entity_code: str | None, default: bool) -> list[TaxInfo]:
        """The taxes that say they apply to this entity (or to the organization, for the default entity)."""
        out = []
        for code, o in self.objs.items():
            codes = o.data.get("applied_to_billing_entities_codes") or []
            mine = entity_code is not None and isinstance(codes, list) and entity_code in codes
            if code in self.by_code and (mine or (default and o.data.get("applied_to_organization"))):
                out.append(self.by_code[code])
        return out


def _tax(d, at: At, ctx: Ctx) -> TaxInfo | None:
    if not isinstance(d, dict):
        ctx.invalid(at, "a tax must be an object {code, name, rate} or a tax code")
        return None
    code = d.get("code")
    if not isinstance(code, str) or not code:
        ctx.invalid(at / "code", "a tax needs its code (a non-empty string)")
        return None
    try:
        rate = V.decimal(d.get("rate"), "the tax rate")
    except V.BadValue as e:
        ctx.invalid(at / "rate", str(e))
        return None
    try:
        name = V.writable(str(d.get("name") or code))
    except V.BadValue as e:
        ctx.invalid(at / "name", str(e))
        return None
    if rate > 100:
        ctx.invalid(at / "rate", f"a tax rate of {V.num(rate)}% is more than 100%")
        return None
    return TaxInfo(code, name, rate)


class Entities:
    """Billing entities by (Lago billing_entity_code or None, currency), laid out in `layout` as they are named."""

    def __init__(self, layout: Layout, objs: dict[str, Obj], taxes: Taxes, ctx: Ctx) -> None:
        self.by_key: dict[tuple, str] = {}
        self.taxes: dict[str, TaxSet] = {}  # entity name -> its taxes
        self.namer = V.Namer("entity")
        self.layout = layout
        self.objs = objs
        self.tax_objs = taxes
        self.ctx = ctx
        self.default = next((c for c, o in objs.items() if o.data.get("is_default") is True), None)

    def get(self, code: str | None, cur: str) -> str:
        """The entity's name; its block is laid out the first time it is asked for."""
        code = code if code is not None else self.default
        key = (code, cur)
        if key not in self.by_key:
            same_code = any(k[0] == code for k in self.by_key)
            if code is None:
                name = self.namer.fresh(f"lago_default_{cur.lower()}")
            else:
                name = self.namer.fresh(f"{code}_{cur}" if same_code else code)
            self.by_key[key] = name
            self._add(name, code, cur)
        return self.by_key[key]

    def _add(self, name: str, code: str | None, cur: str) -> None:
        o = self.objs.get(code) if code is not None else None
        if code is None:
            notes = (f"Default billing entity for {cur}: the Lago customers had no billing_entity_code.",
                     "Add its invoice prefix and timezone here.")
            entity = ast.Entity(ast.Ref(name), ast.Str(f"Default billing entity ({cur}), created by gpubill import lago"))
            taxes = self.tax_objs.applied_to(None, default=True)
        elif o is None:
            notes = (f"Lago billing entity {V.string(code)} ({cur}): it is not among the imported files, so only its",
                     "code and currency are imported; add its taxes, invoice prefix and timezone here.")
            entity = ast.Entity(ast.Ref(name), ast.Str(code))
            taxes = self.tax_objs.applied_to(code, default=False)
        else:
            notes = (f"Lago billing entity {V.string(code)}" + (f" in {cur}" if cur != o.data.get("default_currency")
                                                                 else ""),)
            entity, taxes = self._converted(name, o, cur)
        self.taxes[name] = tax_set(taxes)
        self._lay_out(notes, attrs.evolve(entity, currency=ast.Ref(cur), taxes=_tax_clauses(taxes)))

    def _converted(self, name: str, o: Obj, cur: str) -> tuple[ast.Entity, list[TaxInfo]]:
        """The billing entity's clauses (but its currency and taxes) and its taxes."""
        d, at, ctx = o.data, o.at, self.ctx
        clauses: dict = {}
        try:
            clauses["display_name"] = ast.Str(V.writable(V.comment(d.get("name") or d["code"])))
        except V.BadValue as e:
            ctx.invalid(at / "name", str(e))
        if d.get("timezone"):
            try:
                clauses["timezone"] = ast.Str(V.timezone(d["timezone"], "timezone"))
            except V.BadValue as e:
                ctx.invalid(at / "timezone", str(e))
        clauses.update(_numbering(d, at, ctx))
        grace = invoice_grace(d, at, ctx)
        if grace:
            clauses["invoice_grace"] = grace
        if d.get("eu_tax_management"):
            ctx.error(at / "eu_tax_management", "EU tax management (taxes chosen per customer country) is not "
                      "supported", "gpubill taxes per billing entity: give the entity its taxes in Lago, or one "
                      "entity per tax regime")
        if d.get("net_payment_term"):
            ctx.warn(at / "net_payment_term", "payment terms do not change amounts and are not imported")
        listed = d.get("taxes") if d.get("taxes") is not None else d.get("tax_codes")
        which = "taxes" if d.get("taxes") is not None else "tax_codes"
        taxes = list(self.tax_objs.listed(listed, at / which, ctx) or ())
        for t in self.tax_objs.applied_to(d.get("code"), default=d.get("is_default") is True):
            if t.code not in {x.code for x in taxes}:
                taxes.append(t)
        return ast.Entity(ast.Ref(name), **clauses), taxes

    def _lay_out(self, notes: tuple, e: ast.Entity) -> None:
        lay = self.layout
        for note in notes:
            lay.note(note)
        head = lay.at()
        spans = {k: attrs.evolve(getattr(e, k), span=lay.at())
                 for k in ("display_name", "currency", "timezone") if getattr(e, k) is not None}
        taxes = tuple(attrs.evolve(t, span=lay.at()) for t in e.taxes)
        if e.invoice_prefix is not None:
            spans["invoice_prefix"] = attrs.evolve(e.invoice_prefix, span=lay.at())
        if e.invoice_grace is not None:
            spans["invoice_grace"] = attrs.evolve(e.invoice_grace, span=lay.at())
        lay.blocks.append(attrs.evolve(e, **spans, taxes=taxes, span=lay.close(head)))


def _tax_clauses(taxes: list[TaxInfo]) -> tuple[ast.Tax, ...]:
    """`tax "NAME" RATE%` per tax; named by code where two taxes share a name."""
    names = [t.name for t in taxes]
    return tuple(ast.Tax(ast.Str(t.name if names.count(t.name) == 1 else t.code), ast.Percent(t.rate))
                 for t in taxes)


def _numbering(d: dict, at: At, ctx: Ctx) -> dict:
    """`invoice prefix "P" numbering MODE`; Lago's default prefix (NAM-1234) when none was exported."""
    mode = d.get("document_numbering")
    if mode is not None and (not isinstance(mode, str) or mode not in NUMBERING):
        ctx.invalid(at / "document_numbering", f"unknown document_numbering {mode!r}",
                    "expected per_customer or per_billing_entity")
        return {}
    key = "document_number_prefix" if d.get("document_number_prefix") else "invoice_prefix"
    prefix = d.get(key)
    if not prefix and isinstance(d.get("name"), str) and isinstance(d.get("lago_id"), str):
        prefix = f"{d['name'][:3].upper()}-{d['lago_id'][-4:].upper()}"  # as Lago generates it
    if not prefix:
        if mode:
            ctx.warn(at / "document_numbering", "the numbering needs the entity's document_number_prefix, which "
                     "is not exported; it is not imported")
        return {}
    try:
        out = {"invoice_prefix": ast.Str(V.writable(str(prefix)))}
    except V.BadValue as e:
        ctx.invalid(at / key, str(e))
        return {}
    if mode:
        out["numbering"] = ast.Ref(NUMBERING[mode])
    return out


def invoice_grace(d: dict, at: At, ctx: Ctx) -> ast.Quantity | None:
    """`invoice grace N days` from a customer's or entity's invoice_grace_period (or its billing_configuration's)."""
    grace, where = d.get("invoice_grace_period"), at / "invoice_grace_period"
    if grace is None and isinstance(d.get("billing_configuration"), dict):
        grace = d["billing_configuration"].get("invoice_grace_period")
        where = at / "billing_configuration" / "invoice_grace_period"
    if not grace:
        return None
    try:
        return ast.Quantity(Decimal(V.integer(grace, "invoice_grace_period")), "days")
    except V.BadValue as e:
        ctx.invalid(where, str(e))
        return None
