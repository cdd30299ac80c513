"""A Lago graduated_percentage plan with decimal bounds imports, checks and rates as Lago.

Ranges 0 to 0.01, 0.01 to 10, 11 to null are valid in Lago (a range may start
at the previous to_value or at it + 1). Lago rates a tier the total has passed
as to - from + 1 units (a from of 0 counts as 1), the tier it stops in as
total - from + 1 (the total when from is 0), and adds each reached tier's flat
amount. Run as real subprocesses: `gpubill import lago`, then `gpubill check`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal as D

import pytest

from gpubill.dsl.check import check_sources
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.spec.compile import compile_subscription
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference
from gpubill.engine.spec.subscription import resolve_subscription

from lago_objects import charge, customer, metric, plan, subscription, write

RANGES = {"graduated_percentage_ranges": [
    {"from_value": 0, "to_value": 0.01, "rate": "0", "flat_amount": "0"},
    {"from_value": 0.01, "to_value": 10, "rate": "1", "flat_amount": "200"},
    {"from_value": 11, "to_value": None, "rate": "2", "flat_amount": "300"},
]}
JUNE = "2024-06"  # rated as `gpubill rate --period 2024-06`


def gpubill(*args):
    return subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The directory `gpubill import lago` wrote for the plan, a customer and a subscription."""
    d = tmp_path_factory.mktemp("lago")
    paths = [
        write(d, "metrics.json", {"billable_metrics": [metric("payments", field="amount")]}),
        write(d, "plan.json", {"plan": plan(charges=[charge("payments", "graduated_percentage", RANGES)])}),
        write(d, "customer.json", {"customer": customer()}),
        write(d, "subscription.json", {"subscription": subscription()}),
    ]
    out = d / "billing"
    r = gpubill("import", "lago", *paths, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return out


def test_the_import_checks_clean(imported):
    check = gpubill("check", str(imported))
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def test_the_bounds_are_copied_as_written(imported):
    text = (imported / "plans.bill").read_text()
    assert "0 to 0.01 at 0%\n" in text
    assert "0.01 to 10 at 1% flat 200\n" in text
    assert "11 and above at 2% flat 300\n" in text


@pytest.mark.parametrize("units,amount", [
    ("5", "200.0599"),  # 0.01 x 0 % + (5 - 0.01 + 1 = 5.99) x 1 % + 200
    ("10", "200.1099"),  # (10 - 0.01 + 1 = 10.99) x 1 % + 200
    ("10.5", "500.1199"),  # 200.1099 + (10.5 - 11 + 1 = 0.5) x 2 % + 300
    ("21", "500.3299"),  # 200.1099 + (21 - 11 + 1 = 11) x 2 % + 300
])
def test_both_engines_rate_the_import_as_lago(imported, units, amount):
    files = {str(p): p.read_text() for p in sorted(imported.glob("*.bill"))}
    catalog, diags = check_sources(files)
    assert not [d for d in diags if d.is_error], diags
    spec = compile_subscription(catalog, resolve_subscription(catalog, catalog.contracts["sub_1"], JUNE))
    ts = int(dt.datetime(2024, 6, 10, tzinfo=dt.timezone.utc).timestamp())
    evs = [{"transaction_id": "t1", "external_subscription_id": "sub_1", "code": "payments", "timestamp": ts,
            "properties": {"amount": units}}]
    for result in (rate_reference([spec], evs), rate([spec], InMemoryColumns.from_events(evs))):
        (line,) = [ln for ln in result.lines if ln.kind == "usage"]
        assert line.precise_amount == D(amount)


def test_a_whole_number_shared_bound_is_refused_as_unsupported_not_as_an_importer_bug(tmp_path):
    """Lago counts unit 10 of `0 to 10`, `10 and above` in both tiers: no .bill schedule says that."""
    ranges = {"graduated_percentage_ranges": [
        {"from_value": 0, "to_value": 10, "rate": "1", "flat_amount": "0"},
        {"from_value": 10, "to_value": None, "rate": "2", "flat_amount": "0"},
    ]}
    paths = [write(tmp_path, "metrics.json", {"billable_metrics": [metric("payments", field="amount")]}),
             write(tmp_path, "plan.json", {"plan": plan(charges=[charge("payments", "graduated_percentage", ranges)])})]
    r = gpubill("import", "lago", *paths, "--out", str(tmp_path / "billing"))
    assert r.returncode == 1
    assert "lago-unsupported" in r.stderr and "lago-generated" not in r.stderr
    assert "graduated_percentage_ranges" in r.stderr and "start it at 11" in r.stderr
    assert not (tmp_path / "billing").exists()
