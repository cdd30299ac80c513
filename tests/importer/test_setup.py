"""A Lago customer's whole commercial setup -> .bill: plan fee and interval, thresholds, billing entities and
taxes, coupons and wallets; and the errors, each at its JSON path, for what the language cannot express."""

from __future__ import annotations

import pytest

from gpubill.dsl.check import check_sources
from gpubill.lago.importer import import_lago

from lago_objects import (applied_coupon, billing_entity, charge, coupon, customer, metric, plan, sources,
                          subscription, tax, wallet)
from test_convert import errors, has


def imported(**objs):
    res = import_lago(sources(**objs), "out")
    assert res.ok, [str(d) for d in res.diagnostics]
    _, diags = check_sources(res.files)
    assert [d for d in diags if d.is_error] == []
    return res


def one_error(rule="lago-unsupported", **objs):
    res = import_lago(sources(**objs), "out")
    errs = errors(res)
    assert res.files == {}
    assert len(errs) == 1, [d.message for d in errs]
    assert errs[0].rule == rule, errs[0].message
    return errs[0]


def setup(p=None, c=None, s=None, **more):
    """A metered plan `pro` (charges calls and hours), its customer acme and subscription sub_1, and `more`."""
    ms = [metric("calls", "count_agg"), metric("hours")]
    p = p or plan(charges=[charge("calls", properties={"amount": "1"}), charge("hours", properties={"amount": "2"})])
    return dict(m={"billable_metrics": ms}, p={"plan": p}, c={"customer": c or customer()},
                s={"subscription": s or subscription()}, **more)


# ------------------------------------------------------------------ plan interval, fee, thresholds


@pytest.mark.parametrize("interval", ["weekly", "monthly", "quarterly", "yearly"])
def test_plan_interval_and_fee_in_advance(interval):
    res = imported(**setup(p=plan(interval=interval, amount_cents=6000, pay_in_advance=True)))
    assert has(res.files["out/plans.bill"], f"  billing {interval} calendar\n  fee 60.00 in advance\n")


def test_bill_charges_monthly_is_an_error_at_its_path():
    err = one_error(**setup(p=plan(interval="yearly", bill_charges_monthly=True)))
    assert err.message.startswith("plan.bill_charges_monthly:")


def test_usage_thresholds_of_a_subscription_override_make_its_plan_variant():
    s = subscription(plan_overrides={"usage_thresholds": [{"amount_cents": 20000, "recurring": False},
                                                          {"amount_cents": 5000, "recurring": True}]})
    res = imported(**setup(s=s))
    text = res.files["out/plans.bill"]
    assert has(text, "plan pro_sub_1 {") and has(text, "  progressive billing at 200.00, every 50.00\n")
    assert has(res.files["out/contracts.bill"], "  plan pro_sub_1\n")


# ------------------------------------------------------------------ billing entities and taxes


def test_billing_entity_with_numbering_grace_timezone_and_taxes():
    be = billing_entity(document_numbering="per_billing_entity", document_number_prefix="NWE",
                        invoice_grace_period=5, timezone="Europe/Berlin", name="Northwind GmbH",
                        taxes=[tax("vat_19", 19.0, "Umsatzsteuer")])
    res = imported(**setup(p=plan(currency="EUR"), c=customer(currency="EUR", billing_entity_code="acme_eu")),
                   e={"billing_entity": be})
    assert has(res.files["out/entities.bill"], 'entity acme_eu {\n  name "Northwind GmbH"\n  currency EUR\n'
               '  timezone "Europe/Berlin"\n  tax "Umsatzsteuer" 19.0%\n  invoice prefix "NWE" numbering per_entity\n'
               '  invoice grace 5 days\n}')
    assert has(res.files["out/contracts.bill"], "  entity acme_eu\n")


def test_lagos_default_prefix_when_none_was_exported():
    be = billing_entity(document_number_prefix=None, name="Bentley", lago_id="1234-abcd")
    res = imported(**setup(p=plan(currency="EUR"), c=customer(currency="EUR", billing_entity_code="acme_eu")),
                   e={"billing_entity": be})
    assert has(res.files["out/entities.bill"], '  invoice prefix "BEN-ABCD" numbering per_customer\n')


def test_taxes_applied_to_an_entity_or_to_the_organization():
    taxes = [tax("vat_20", 20, applied_to_organization=True), tax("gst", 5, applied_to_billing_entities_codes=["x"])]
    res = imported(**setup(), t={"taxes": taxes})
    text = res.files["out/entities.bill"]
    assert has(text, "entity lago_default_usd {") and has(text, '  tax "VAT_20" 20%\n') and "GST" not in text


def test_tax_codes_resolve_against_the_imported_taxes():
    be = billing_entity(currency="USD", taxes=None, tax_codes=["vat_20"])
    res = imported(**setup(c=customer(billing_entity_code="acme_eu", tax_codes=["vat_20"])),
                   e={"billing_entity": be}, t={"tax": tax()})
    assert has(res.files["out/entities.bill"], '  tax "VAT_20" 20.0%\n')


def test_a_customer_tax_that_differs_from_its_entitys_is_an_error():
    be = billing_entity(currency="USD", taxes=[tax("vat_20", 20.0)])
    err = one_error(**setup(c=customer(billing_entity_code="acme_eu", taxes=[tax("vat_10", 10.0)])),
                    e={"billing_entity": be})
    assert err.message.startswith("customer.taxes:") and "vat_10 10.0%" in err.message
    assert "acme_eu (vat_20 20.0%)" in err.message


def test_plan_and_charge_taxes_must_be_the_entitys():
    ch = charge("calls", properties={"amount": "1"}, taxes=[tax("vat_20", 20.0)])
    err = one_error(**setup(p=plan(charges=[ch])))
    assert err.message.startswith("plan.charges[0].taxes:") and "(no tax)" in err.message
    be = billing_entity(currency="USD", taxes=[tax("vat_20", 20.0)])
    res = imported(**setup(p=plan(charges=[ch], taxes=[tax("vat_20", 20.0)]),
                           c=customer(billing_entity_code="acme_eu")), e={"billing_entity": be})
    assert has(res.files["out/entities.bill"], '  tax "VAT_20" 20.0%\n')


def test_eu_tax_management_is_an_error():
    be = billing_entity(currency="USD", eu_tax_management=True)
    err = one_error(**setup(c=customer(billing_entity_code="acme_eu")), e={"billing_entity": be})
    assert err.message.startswith("billing_entity.eu_tax_management:")


def test_a_missing_tax_code_is_reported():
    be = billing_entity(currency="USD", taxes=None, tax_codes=["nope"])
    err = one_error("lago-missing", **setup(c=customer(billing_entity_code="acme_eu")), e={"billing_entity": be})
    assert err.message.startswith("billing_entity.tax_codes[0]:")


# ------------------------------------------------------------------ coupons


def test_coupons_become_discounts_in_lagos_order():
    cps = [coupon("pct", percentage_rate=10.0, frequency="recurring", frequency_duration=3),
           coupon("fix", "fixed_amount", amount_cents=5000, amount_currency="USD", frequency="once"),
           coupon("calls_only", percentage_rate=5.0, frequency="forever", limited_billable_metrics=True,
                  billable_metric_codes=["calls"]),
           coupon("on_pro", "fixed_amount", amount_cents=100, amount_currency="USD", frequency="forever",
                  limited_plans=True, plan_codes=["pro", "other"])]
    applied = [applied_coupon("pct", n=1, percentage_rate=12.5), applied_coupon("fix", n=2),
               applied_coupon("calls_only", n=3), applied_coupon("on_pro", n=4)]
    res = imported(**setup(), k={"coupons": cps}, a={"applied_coupons": applied})
    assert has(res.files["out/contracts.bill"], '  # Lago coupon "calls_only"\n  discount 5.0% forever for calls\n'
               '  # Lago coupon "on_pro"\n  discount 1.00 USD forever\n'
               '  # Lago coupon "pct"\n  discount 12.5% recurring 3 periods\n'
               '  # Lago coupon "fix"\n  discount 50.00 USD once\n')


@pytest.mark.parametrize("cp,where,needle", [
    (coupon(limited_plans=True, plan_codes=["enterprise"], percentage_rate=10), "applied_coupon.coupon_code",
     "limited to the plans enterprise"),
    (coupon(billable_metric_codes=["calls", "hours"], percentage_rate=10), "coupon.billable_metric_codes",
     "several billable metrics"),
    (coupon(applies_to={"billable_metric_codes": ["gpu"]}, percentage_rate=10), "coupon.applies_to.billable_metric_codes[0]",
     "no charge on the billable metric 'gpu'"),
    (coupon(coupon_type="fixed_amount", amount_cents=100, amount_currency="EUR"), "coupon.amount_currency",
     "a EUR coupon on a contract in USD"),
])
def test_coupons_the_language_cannot_express(cp, where, needle):
    res = import_lago(sources(**setup(), k={"coupon": cp}, a={"applied_coupon": applied_coupon()}), "out")
    [err] = errors(res)
    assert res.files == {} and err.message.startswith(where + ":") and needle in err.message, err.message


def test_an_applied_coupon_needs_its_coupon_and_a_subscription():
    err = one_error("lago-missing", **setup(), a={"applied_coupon": applied_coupon()})
    assert err.message.startswith("applied_coupon.coupon_code:")
    err = one_error("lago-missing", **setup(), k={"coupon": coupon(percentage_rate=10)},
                    a={"applied_coupon": applied_coupon(customer_id="ghost")})
    assert "'ghost'" in err.message


def test_a_coupon_across_several_subscriptions_is_an_error():
    subs = [subscription("s1"), subscription("s2")]
    err = one_error(**setup(), s2={"subscriptions": subs}, k={"coupon": coupon(percentage_rate=10)},
                    a={"applied_coupon": applied_coupon()})
    assert "3 imported subscriptions" in err.message


def test_a_terminated_applied_coupon_is_skipped_with_a_warning():
    res = imported(**setup(), k={"coupon": coupon(percentage_rate=10)},
                   a={"applied_coupon": applied_coupon(status="terminated")})
    assert "discount" not in res.files["out/contracts.bill"]
    assert any(d.rule == "lago-ignored" and "terminated" in d.message for d in res.diagnostics)


# ------------------------------------------------------------------ wallets


def test_wallets_become_credits():
    ws = [wallet(granted="100", paid="40", rate="0.5", priority=1, expiration_at="2025-01-01T00:00:00Z", n=1),
          wallet(paid="25", n=2, applies_to={"fee_types": ["charge"], "billable_metric_codes": ["hours"]})]
    res = imported(**setup(), w={"wallets": ws})
    assert has(res.files["out/contracts.bill"],
               '  # Lago wallet "Wallet 1" (0.5 USD per credit)\n'
               '  credit 50.00 USD granted, expires 2025-01-01T00:00:00Z, priority 1\n'
               '  # Lago wallet "Wallet 1" (0.5 USD per credit)\n'
               '  credit 20.00 USD paid, expires 2025-01-01T00:00:00Z, priority 1\n'
               '  # Lago wallet "Wallet 2"\n  credit 25.00 USD paid, priority 50, for hours\n')


def test_a_wallet_as_the_api_returns_it_credits_its_balance():
    w = {"lago_id": "w", "external_customer_id": "acme", "status": "active", "currency": "USD",
         "rate_amount": "1.0", "credits_balance": "12.5", "balance_cents": 1250, "priority": 2,
         "created_at": "2024-06-01T00:00:00Z"}
    res = imported(**setup(), w={"wallet": w})
    assert has(res.files["out/contracts.bill"], "  credit 12.50 USD, priority 2\n")


@pytest.mark.parametrize("w,where,needle", [
    (wallet(paid="1.001"), "wallet.paid_credits", "not a whole number of the currency's minor unit"),
    (wallet(paid="10", applies_to={"fee_types": ["subscription"]}), "wallet.applies_to.fee_types",
     "fee types ['subscription']"),
    (wallet(paid="10", applies_to={"billable_metric_codes": ["calls", "hours"]}),
     "wallet.applies_to.billable_metric_codes", "several billable metrics"),
    (wallet(paid="10", recurring_transaction_rules=[{"trigger": "interval", "interval": "monthly"}]),
     "wallet.recurring_transaction_rules", "recurring top-ups"),
    (wallet(paid="10", currency="EUR"), "wallet.currency", "a EUR wallet for a contract in USD"),
])
def test_wallets_the_language_cannot_express(w, where, needle):
    res = import_lago(sources(**setup(), w={"wallet": w}), "out")
    [err] = errors(res)
    assert res.files == {} and err.message.startswith(where + ":") and needle in err.message, err.message


def test_objects_are_recognised_without_their_root_key():
    res = imported(**setup(), w=wallet(paid="10"), k=coupon(percentage_rate=10), a=applied_coupon(),
                   t=tax(applied_to_organization=True))
    text = res.files["out/contracts.bill"]
    assert "credit 10.00 USD paid" in text and "discount 10% once" in text
    assert 'tax "VAT_20" 20.0%' in res.files["out/entities.bill"]


def test_a_plan_limited_coupon_goes_to_the_customers_subscription_on_that_plan():
    other = plan(code="basic", charges=[charge("calls", properties={"amount": "1"})])
    subs = [subscription("s_basic", plan_code="basic")]
    cp = coupon(percentage_rate=10, limited_plans=True, plan_codes=["basic"])
    res = imported(**setup(), q={"plan": other}, s2={"subscriptions": subs}, k={"coupon": cp},
                   a={"applied_coupon": applied_coupon()})
    text = res.files["out/contracts.bill"]
    assert text.index("discount 10% once") > text.index("contract s_basic {")
    assert text.count("discount") == 1


def test_a_coupon_applied_to_nobody_and_an_expired_wallet_are_warnings():
    res = imported(**setup(), k={"coupon": coupon(percentage_rate=10)},
                   w={"wallet": wallet(paid="5", expiration_at="2024-05-01T00:00:00Z")})
    assert "discount" not in res.files["out/contracts.bill"] and "credit" not in res.files["out/contracts.bill"]
    warnings = sorted(d.message.split(":")[0] for d in res.diagnostics if not d.is_error)
    assert warnings == ["coupon", "wallet.expiration_at"]


def test_equal_usage_thresholds_are_invalid():
    p = plan(usage_thresholds=[{"amount_cents": 100, "recurring": False}, {"amount_cents": 100, "recurring": False}])
    err = one_error("lago-invalid", **setup(p=p))
    assert err.message.startswith("plan.usage_thresholds:") and "same amount" in err.message


def test_a_commitment_on_a_plan_without_fee_or_charges_is_an_error_not_a_generated_bug():
    p = plan(minimum_commitment={"amount_cents": 100000, "interval": "monthly"})
    err = one_error(**setup(p=p))
    assert err.message.startswith("plan.minimum_commitment:") and "neither a fee nor charges" in err.message


@pytest.mark.parametrize("objs,where", [
    (dict(e={"billing_entity": billing_entity(currency="USD", document_numbering=[])}),
     "billing_entity.document_numbering"),
    (dict(k={"coupon": coupon(percentage_rate=10, plan_codes=5)}, a={"applied_coupon": applied_coupon()}),
     "coupon.plan_codes"),
    (dict(k={"coupon": coupon(percentage_rate=10)}, a={"applied_coupon": applied_coupon(coupon_code=["welcome"])}),
     "applied_coupon.coupon_code"),
    (dict(w={"wallet": wallet(paid="1", applies_to={"fee_types": "charge"})}), "wallet.applies_to.fee_types"),
])
def test_malformed_setup_values_are_located_errors_not_crashes(objs, where):
    c = customer(billing_entity_code="acme_eu") if "e" in objs else None
    res = import_lago(sources(**setup(c=c), **objs), "out")
    assert res.files == {} and any(d.is_error and d.message.startswith(where + ":") for d in res.diagnostics), \
        [d.message for d in res.diagnostics]


def _paths(o, pre=()):
    """Every JSON path inside `o`."""
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
    for k, v in items:
        yield pre + (k,)
        yield from _paths(v, pre + (k,))


@pytest.mark.parametrize("name", ["invoice_order", "coupons"])
def test_any_field_of_a_setup_given_a_wrong_shape_is_a_diagnostic_never_a_crash(name):
    import copy
    import json

    from lago_objects import FIXTURES

    doc = json.loads((FIXTURES.parent / "lago_examples" / f"{name}.json").read_text())
    for path in _paths({k: v for k, v in doc.items() if k != "billable_metrics"}):
        for bad in (5, [], {"k": "v"}, "x"):
            mutated = copy.deepcopy(doc)
            target = mutated
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = bad
            res = import_lago({"setup.json": json.dumps(mutated)}, "out")  # never raises
            assert res.ok or res.files == {}
