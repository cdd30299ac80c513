"""The worked examples of lago-semantics.md section d, set up as Lago objects (tests/importer/lago_examples/).

Each `NAME.json` holds one example's Lago setup (metrics, plan, customer, subscription, and the billing
entity, taxes, coupons and wallets it needs); `NAME.events.json`, where the example has usage, its events
as a Lago batch. The README beside them gives each example's expected invoice figures. Here each setup is
imported, checked, and its plan, contract and entity must hold exactly the clauses listed below; the usage
is rated with the reference engine to the fee amounts the README's figures start from. The invoice
assertions themselves come with the invoice engine (gpubill/contracts).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from gpubill.dsl import ast
from gpubill.dsl.check import check_sources
from gpubill.dsl.parse import parse
from gpubill.engine.reference.engine import rate_reference
from gpubill.engine.spec.compile import compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription
from gpubill.lago.importer import import_lago

EXAMPLES = Path(__file__).parent / "lago_examples"

COMMIT_PLAN = ["currency USD", "billing {interval} calendar", "fee 1000.00 in arrears"]
COMMIT_CONTRACT = ['customer "acme" name "Acme"', 'subscription "sub_commit"', "entity lago_default_usd",
                   "plan committed", "starts {starts}", "commit 10000.00 USD per period, true-up each period",
                   'timezone "UTC"']
MINIMUM_CONTRACT = ['customer "acme" name "Acme"', 'subscription "sub_minimum"', "entity lago_default_usd",
                    "plan minimum", "starts {starts}", 'timezone "UTC"']
NORTHWIND = ['name "Northwind GPU Cloud"', "currency USD", 'timezone "UTC"', 'tax "VAT" {rate}%',
             'invoice prefix "NWD" numbering per_customer']


def _fill(lines, **kw):
    return [line.format(**kw) for line in lines]


# name -> (period rated, usage amount rated in it or None, {block head: its clauses, exactly})
CASES = {
    "progressive_billing": ("2025-03", "600", {
        "plan metered": ["currency USD", "billing monthly calendar", "fee 31.00 in arrears",
                         "progressive billing at 200.00, 600.00", "charge gpu_hours 1 per unit"],
        "contract sub_progressive": ['customer "acme" name "Acme"', 'subscription "sub_progressive"',
                                     "entity lago_default_usd", "plan metered", "starts 2025-03-01T00:00:00Z",
                                     'timezone "UTC"'],
    }),
    "commitment_feb4": ("2025-02", None, {
        "plan committed": _fill(COMMIT_PLAN, interval="monthly"),
        "contract sub_commit": _fill(COMMIT_CONTRACT, starts="2025-02-04T00:00:00Z"),
    }),
    "commitment_weekly_wednesday": ("2025-02", None, {
        "plan committed": _fill(COMMIT_PLAN, interval="weekly"),
        "contract sub_commit": _fill(COMMIT_CONTRACT, starts="2025-02-05T00:00:00Z"),
    }),
    "commitment_full_period": ("2025-02", None, {
        "plan committed": _fill(COMMIT_PLAN, interval="monthly"),
        "contract sub_commit": _fill(COMMIT_CONTRACT, starts="2025-02-01T00:00:00Z"),
    }),
    "spending_minimum": ("2025-03", "7", {
        "plan minimum": ["currency USD", "billing monthly calendar", "charge gpu_hours 1 per unit {",
                         "minimum spend 10.00", "}"],
        "contract sub_minimum": _fill(MINIMUM_CONTRACT, starts="2025-03-01T00:00:00Z"),
    }),
    "spending_minimum_prorated": ("2025-03", "2", {
        "plan minimum": ["currency USD", "billing monthly calendar", "charge gpu_hours 1 per unit {",
                         "minimum spend 10.00", "}"],
        "contract sub_minimum": _fill(MINIMUM_CONTRACT, starts="2025-03-17T00:00:00Z"),
    }),
    "spending_minimum_terminated_filters": ("2025-02", "70", {
        "plan minimum": ["currency USD", "billing monthly calendar", "charge gpu_hours 0 per unit {",
                         'where gpu_type = "H100" 2 per unit', 'where gpu_type = "A100" 1 per unit',
                         "minimum spend 100.00", "}"],
        "contract sub_minimum": _fill(MINIMUM_CONTRACT, starts="2025-01-01T00:00:00Z")[:5]
        + ["ends 2025-02-25T12:00:00Z", 'timezone "UTC"'],
    }),
    "coupons": ("2025-03", "200", {
        "plan pro": ["currency USD", "billing monthly calendar", "fee 100.00 in arrears", "charge gpu_hours 1 per unit"],
        "contract sub_coupons": ['customer "acme" name "Acme"', 'subscription "sub_coupons"',
                                 "entity lago_default_usd", "plan pro", "starts 2025-03-01T00:00:00Z",
                                 "discount 10.0% forever for gpu_hours", "discount 50.00 USD once",
                                 "discount 10.0% recurring 3 periods", 'timezone "UTC"'],
    }),
    "taxes_1889": ("2025-03", "178.86", {
        "plan taxed": ["currency USD", "billing monthly calendar", "fee 10.04 in arrears",
                       "charge a 20.04 per event", "charge b 30.04 per event", "charge c 40.04 per event",
                       "charge d 88.74 per event"],
        "entity northwind": _fill(NORTHWIND, rate="10.0"),
        "contract sub_taxes": ['customer "acme" name "Acme"', 'subscription "sub_taxes"', "entity northwind",
                               "plan taxed", "starts 2025-03-01T00:00:00Z", 'timezone "UTC"'],
    }),
    "invoice_order": ("2025-03", "20", {
        "plan order": ["currency USD", "billing monthly calendar", "fee 50.00 in arrears",
                       "charge gpu_hours 1 per unit"],
        "entity northwind": _fill(NORTHWIND, rate="10.0"),
        "contract sub_order": ['customer "acme" name "Acme"', 'subscription "sub_order"', "entity northwind",
                               "plan order", "starts 2025-03-01T00:00:00Z", "credit 30.00 USD granted, priority 50",
                               "discount 10.00 USD once", 'timezone "UTC"'],
    }),
    "termination_credit": ("2025-02", None, {
        "plan advance": ["currency USD", "billing monthly calendar", "fee 60.00 in advance"],
        "contract sub_terminated": ['customer "acme" name "Acme"', 'subscription "sub_terminated"',
                                    "entity lago_default_usd", "plan advance", "starts 2025-01-01T00:00:00Z",
                                    "ends 2025-02-25T12:00:00Z", 'timezone "UTC"'],
    }),
    "fee_prorated_with_tax": ("2025-03", None, {
        "plan flat": ["currency USD", "billing monthly calendar", "fee 50.00 in arrears"],
        "entity northwind": _fill(NORTHWIND, rate="20.0"),
        "contract sub_flat": ['customer "acme" name "Acme"', 'subscription "sub_flat"', "entity northwind",
                              "plan flat", "starts 2025-03-08T00:00:00Z", 'timezone "UTC"'],
    }),
}


def import_example(name: str) -> dict[str, str]:
    res = import_lago({f"{name}.json": (EXAMPLES / f"{name}.json").read_text()}, "out")
    assert res.ok, [str(d) for d in res.diagnostics]
    assert res.diagnostics == (), [str(d) for d in res.diagnostics]  # not even a warning
    return res.files


def clauses(files: dict[str, str], head: str) -> list[str]:
    """The lines of the block `head` in the generated files, without comments, stripped."""
    for text in files.values():
        lines = text.splitlines()
        if f"{head} {{" in lines:
            body = lines[lines.index(f"{head} {{") + 1:]
            body = body[:body.index("}")]
            return [ln.strip() for ln in body if ln.strip() and not ln.strip().startswith("#")]
    raise AssertionError(f"no block {head!r} in {sorted(files)}")


def test_every_setup_has_a_case_and_a_readme_entry():
    names = {p.name[:-len(".json")] for p in EXAMPLES.glob("*.json") if not p.name.endswith(".events.json")}
    assert names == set(CASES)
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"`{n}.json`" in readme for n in names)
    for p in EXAMPLES.glob("*.events.json"):
        assert p.name[:-len(".events.json")] in names


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_imports_to_exactly_its_clauses(name):
    files = import_example(name)
    catalog, diags = check_sources(files)
    assert diags == []
    for head, expected in CASES[name][2].items():
        assert clauses(files, head) == expected, head
    # one contract, and only the blocks listed: nothing else was imported
    heads = {b.name.name for b in _blocks(files) if isinstance(b, (ast.Contract, ast.Plan))}
    assert heads == {h.split()[1] for h in CASES[name][2] if not h.startswith("entity")}


def _blocks(files):
    for path, text in files.items():
        doc, _ = parse(text, path)
        yield from doc.blocks


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[1] is not None))
def test_example_usage_rates_to_its_fees(name):
    """The events rate to the charge fees the README's invoice figures start from."""
    period, usage, _ = CASES[name]
    files = import_example(name)
    catalog, _ = check_sources(files)
    [contract] = catalog.contracts.values()
    spec = compile_subscription(catalog, resolve_subscription(catalog, contract, period))
    lines = rate_reference([spec], _events(name)).lines
    assert sum((ln.amount for ln in lines if ln.kind == "usage"), D(0)) == D(usage)


def _events(name: str) -> list[dict]:
    """The Lago batch as the engine's events (Unix-second timestamps)."""
    out = []
    for e in json.loads((EXAMPLES / f"{name}.events.json").read_text())["events"]:
        t = dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        out.append(dict(e, timestamp=int(t.timestamp())))
    return out



def test_setups_are_valid_lago_api_objects():
    """Each object parses with Lago's own Python client models (wallets in the shape a wallet is created in)."""
    from lago_python_client.models.applied_coupon import AppliedCouponResponse
    from lago_python_client.models.billable_metric import BillableMetricResponse
    from lago_python_client.models.billing_entity import BillingEntityResponse
    from lago_python_client.models.coupon import CouponResponse
    from lago_python_client.models.customer import CustomerResponse
    from lago_python_client.models.plan import PlanResponse
    from lago_python_client.models.subscription import SubscriptionResponse
    from lago_python_client.models.wallet import Wallet

    models = {"billable_metrics": BillableMetricResponse, "plan": PlanResponse, "customer": CustomerResponse,
              "subscription": SubscriptionResponse, "billing_entity": BillingEntityResponse,
              "coupon": CouponResponse, "coupons": CouponResponse, "applied_coupon": AppliedCouponResponse,
              "applied_coupons": AppliedCouponResponse, "wallet": Wallet}
    for name in CASES:
        for key, value in json.loads((EXAMPLES / f"{name}.json").read_text()).items():
            for obj in value if isinstance(value, list) else [value]:
                models[key].parse_obj(obj)
