"""Rating never drops or aborts silently: hostile values through both engines.

A value the store cannot hold leaves its subscription out, named, in both
engines; a sum or product beyond int64 is rated exactly (the fast engine's
exact path); one bad subscription never holds up the others; JSON floats,
objects, arrays and booleans read the same in both engines; bad --period
values are one clear line and exit 2.  Real SQLite files, the real CLI in a
subprocess; engine-level tests use the engine's own in-memory columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from gpubill.engine.fast import tables
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.spec.program import ChargeSpec, MetricSpec, Mul, Prop, Standard, SubscriptionSpec
from gpubill.engine.fast.rate import rate, run_pass, unheld
from gpubill.engine.reference.engine import held_pair, rate_reference
from gpubill.store import numeric as store_numeric

CLI_TIMEOUT_S = 300
T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
T1 = T0 + 30 * 86_400_000 - 1
UNHELD = "123456789012345678901234"  # 24 digits: a number, but beyond an int64 mantissa

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric batch_units {
  event batch
  sum units
}
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}
metric tokens {
  event inference
  sum input_tokens
}
metric jobs {
  event job
  count
  dimension kind
}
metric spot {
  event spot
  sum units
}
plan p {
  currency USD
  billing monthly calendar
  charge batch_units 1.00 per unit
  charge gpu_hours 2.00 per hour
  charge tokens 1.00 per token
  charge jobs 1.00 per event { group by kind }
  charge spot dynamic
}
contract a { customer "cust-a" subscription "sub_a" entity us plan p starts 2026-01-01 }
contract b { customer "cust-b" subscription "sub_b" entity us plan p starts 2026-01-01 }
contract c { customer "cust-c" subscription "sub_c" entity us plan p starts 2026-01-01 }
"""


# ---------------------------------------------------------------- helpers


def gpubill(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_STORE"}
    p = subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, env=env, timeout=CLI_TIMEOUT_S)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def ev(tx, sub, code, ts="2026-10-05T10:00:00Z", **props):
    return {"transaction_id": tx, "external_subscription_id": sub, "code": code, "timestamp": ts,
            "properties": props}


def billing(tmp_path, events):
    """A repository and a store holding ``events`` (every one accepted)."""
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "c.bill").write_text(CATALOG)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    r = gpubill("ingest", "e.jsonl", "--store", "b.db", cwd=tmp_path)
    assert r.returncode == 0 and " 0 rejected" in r.stdout, r.stdout + r.stderr
    return tmp_path


def rate_json(path, engine, period="2026-10"):
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", period, "--format", "json",
                "--engine", engine, cwd=path)
    return r, json.loads(r.stdout)


def both_engines(path, period="2026-10"):
    """(return code, stderr, JSON) of each engine; the two must be identical."""
    (rf, df), (rr, dr) = rate_json(path, "fast", period), rate_json(path, "reference", period)
    assert df == dr
    assert (rf.returncode, rf.stderr) == (rr.returncode, rr.stderr)
    return rf.returncode, rf.stderr, df


def units(doc, sub, charge):
    for s in doc["subscriptions"]:
        if s["external_subscription_id"] == sub:
            return sum(Decimal(ln["units"]) for ln in s["lines"] if ln["charge"] == charge)
    raise KeyError(sub)


def mev(tx, sub, ts=T0, **props):
    return dict(transaction_id=tx, external_subscription_id=sub, code="e", timestamp_ms=ts, properties=props)


def subs_of(*charges, names=("a", "b", "c")):
    return [SubscriptionSpec(n, tuple(charges), T0, T1) for n in names]


def both(subs, evs):
    fast = rate(subs, InMemoryColumns.from_events(evs))
    assert fast == rate_reference(subs, evs)
    return fast


SUM_V = ChargeSpec("c", MetricSpec("mv", "e", "sum", field="v"), Standard(1))


# ---------------------------------------------------------------- the shared number form


@pytest.mark.parametrize("text", [
    "0", "-0", "0.000", "0." + "0" * 200, "1" + "0" * 200, "1" + "0" * 30, "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "92233720368547758070", "0.0000000000000000000001",
    "100000." + "0" * 130, "1." + "0" * 130 + "1", "0." + "0" * 125 + "1", "0." + "0" * 126 + "1",
    "1" + "0" * 127, "1" + "0" * 145, "99999999999999999999", UNHELD, "12.50", "-7." + "0" * 40,
])
def test_the_reference_engine_holds_exactly_what_the_store_holds(text):
    ours, store = held_pair(text), store_numeric.parse_strict(text)
    assert (ours is None) == (store[1] == store_numeric.UNHOLDABLE)
    if ours is not None:
        assert Decimal(ours[0]).scaleb(ours[1]) == Decimal(store[0]).scaleb(store[1]) == Decimal(text)


# ---------------------------------------------------------------- defect 1: a value that cannot be held


def test_a_value_that_cannot_be_held_leaves_its_subscription_out_in_both_engines():
    """Before: the fast engine ignored the event (billed 0) and the reference engine billed it."""
    evs = [mev("x1", "a", v=UNHELD), mev("x2", "a", v="5"), mev("y1", "b", v="7"), mev("z1", "c", v=str(2**64 - 1))]
    r = both(subs_of(SUM_V), evs)
    assert [(u.subscription, u.charge_id, u.metric) for u in r.unrated] == [("a", "c", "mv"), ("c", "c", "mv")]
    assert 'event "x1": v is a number too large' in r.unrated[0].reason
    assert [(ln.subscription, ln.units) for ln in r.lines] == [("b", 7)]


def test_a_value_that_cannot_be_held_is_an_error_even_beside_a_missing_one():
    """gpu x hours with gpu missing would be ignored; with hours unholdable it is an error, in both engines."""
    charge = ChargeSpec("c", MetricSpec("gh", "e", "sum", expr=Mul(Prop("g"), Prop("h"))), Standard(1))
    r = both(subs_of(charge, names=("a",)), [mev("x1", "a", h="1" * 30)])
    assert [u.subscription for u in r.unrated] == ["a"] and r.lines == ()


def test_the_cli_names_the_left_out_subscription_and_rates_the_rest(tmp_path):
    path = billing(tmp_path, [
        ev("a1", "sub_a", "batch", units=UNHELD), ev("a2", "sub_a", "batch", units="3"),
        ev("b1", "sub_b", "batch", units="4"), ev("c1", "sub_c", "job", kind="train"),
    ])
    code, err, doc = both_engines(path)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpubill: error: ")
    assert 'subscription "sub_a" (customer "cust-a", contract "a") not rated: charge batch_units' in lines[0]
    assert 'event "a1"' in lines[0]
    assert [u["external_subscription_id"] for u in doc["unrated"]] == ["sub_a"]
    assert doc["unrated"][0]["customer"] == "cust-a" and doc["unrated"][0]["metric"] == "batch_units"
    assert [s["external_subscription_id"] for s in doc["subscriptions"]] == ["sub_b", "sub_c"]
    assert units(doc, "sub_b", "batch_units") == 4 and units(doc, "sub_c", "jobs") == 1
    # the table says the same: the others' report on stdout, the left-out one on stderr, exit 1
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", cwd=path)
    assert r.returncode == 1 and "sub_b" in r.stdout and "sub_a" not in r.stdout
    assert r.stderr.splitlines() == lines


def test_explain_traces_the_rated_subscriptions_beside_a_left_out_one(tmp_path):
    path = billing(tmp_path, [ev("a1", "sub_a", "batch", units=UNHELD), ev("b1", "sub_b", "batch", units="4")])
    for engine in ("fast", "reference"):
        r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--explain",
                    "--format", "json", "--engine", engine, cwd=path)
        doc = json.loads(r.stdout)
        assert r.returncode == 1 and [u["external_subscription_id"] for u in doc["unrated"]] == ["sub_a"]
        (line,) = [ln for ln in doc["subscriptions"][0]["lines"] if ln["charge"] == "batch_units"]
        assert line["explain"]["events"] == {"count": 1, "transaction_ids": ["b1"]}


def test_the_table_escapes_what_a_terminal_would_act_on(tmp_path):
    path = billing(tmp_path, [ev("b1", "sub_b", "job", kind="\x1b[2J\x1b[31mred"), ev("b2", "sub_b", "job", kind="a\u202eb\nc")])
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", cwd=path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "kind=\\x1b[2J\\x1b[31mred" in r.stdout and "kind=a\\u202eb\\x0ac" in r.stdout


def test_two_contracts_billing_one_subscription_is_refused_by_both_engines(tmp_path):
    path = billing(tmp_path, [ev("b1", "sub_b", "batch", units="4")])
    (path / "repo" / "c.bill").write_text(  # a handover in the middle of the period: terms that do not overlap
        CATALOG.replace('"sub_b" entity us plan p starts 2026-01-01', '"sub_b" entity us plan p starts 2026-01-01 ends 2026-10-10')
               .replace('"sub_c" entity us plan p starts 2026-01-01', '"sub_b" entity us plan p starts 2026-10-20'))
    for engine in ("fast", "reference"):
        r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--engine", engine,
                    cwd=path)
        assert r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1
        assert 'contracts "b" and "c" both bill subscription "sub_b"' in r.stderr


def test_nothing_left_out_means_an_empty_unrated_list_and_exit_0(tmp_path):
    path = billing(tmp_path, [ev("b1", "sub_b", "batch", units="4")])
    code, err, doc = both_engines(path)
    assert code == 0 and err == "" and doc["unrated"] == []


# ---------------------------------------------------------------- defect 2: overflow never aborts the run


def test_a_sum_beyond_int64_is_rated_exactly_and_the_run_goes_on(tmp_path):
    """Before: EngineOverflow aborted the whole run, with no output for anyone."""
    big = 2**62
    path = billing(tmp_path, [ev(f"a{i}", "sub_a", "inference", input_tokens=big) for i in range(3)]
                   + [ev("b1", "sub_b", "inference", input_tokens=5)])
    code, err, doc = both_engines(path)
    assert (code, err, doc["unrated"]) == (0, "", [])
    assert units(doc, "sub_a", "tokens") == 3 * big and units(doc, "sub_b", "tokens") == 5


def test_a_product_beyond_int64_is_rated_exactly(tmp_path):
    path = billing(tmp_path, [
        ev("a1", "sub_a", "gpu_job", gpu_count=100000, duration_seconds=9_000_000_000_000),
        ev("b1", "sub_b", "gpu_job", gpu_count=1, duration_seconds=3600),
    ])
    code, err, doc = both_engines(path)
    assert (code, doc["unrated"]) == (0, [])
    assert units(doc, "sub_a", "gpu_hours") == Decimal(100000 * 9_000_000_000_000) / 3600
    assert units(doc, "sub_b", "gpu_hours") == 1


def test_22_decimals_are_rated_exactly_and_do_not_push_the_others_off_the_fast_path():
    """Before: the column's scale went to 1e-22, so every other value overflowed it."""
    fine = "0.0000000000000000000001"
    evs = [mev("a1", "a", v=fine), mev("a2", "a", v="1"), mev("b1", "b", v="86400.5"), mev("c1", "c", v="9" * 12)]
    r = both(subs_of(SUM_V), evs)
    assert r.unrated == ()
    assert [ln.units for ln in r.lines] == [1 + Decimal(fine), Decimal("86400.5"), Decimal("9" * 12)]
    cols = InMemoryColumns.from_events(evs)
    p = tables.build(subs_of(SUM_V), cols)
    assert unheld(run_pass(p, cols)[1]) == [0]  # only "a" needed the exact path


@pytest.mark.parametrize("threads", ["1", "2"])
def test_overflow_in_one_subscription_leaves_the_others_on_the_fast_path(threads, monkeypatch):
    from gpubill.engine.fast import main_pass

    k = int(threads)
    monkeypatch.setattr(main_pass, "chunks", lambda n: [(n * i // k, n * (i + 1) // k) for i in range(k)])
    evs = [mev(f"a{i}", "a", v=str(2**62)) for i in range(3)] + [mev(f"b{i}", "b", v="1") for i in range(4)]
    cols = InMemoryColumns.from_events(evs)
    p = tables.build(subs_of(SUM_V, names=("a", "b")), cols)
    assert unheld(run_pass(p, cols)[1]) == [0]
    r = both(subs_of(SUM_V, names=("a", "b")), evs)
    assert [ln.units for ln in r.lines] == [3 * 2**62, 4]


def test_an_amount_beyond_exact_decimal_is_left_out_in_both_engines_not_a_crash():
    """~1e145 x ~1e145 priced to the cent needs more than 200 digits: that subscription is left out."""
    huge = "9223372036854775807" + "0" * 127
    charge = ChargeSpec("c", MetricSpec("gh", "e", "sum", expr=Mul(Prop("g"), Prop("h"))), Standard(1))
    evs = [mev("a1", "a", g=huge, h=huge), mev("b1", "b", g="2", h="3")]
    r = both(subs_of(charge, names=("a", "b")), evs)
    assert [(u.subscription, u.charge_id) for u in r.unrated] == [("a", "c")]
    assert "cannot be priced exactly" in r.unrated[0].reason
    assert [(ln.subscription, ln.units) for ln in r.lines] == [("b", 6)]


# ---------------------------------------------------------------- defect 3: JSON floats and other types


def test_json_floats_read_the_same_in_both_engines(tmp_path):
    """Before: --engine reference crashed (exit 70) on any JSON float property."""
    path = billing(tmp_path, [
        ev("a1", "sub_a", "gpu_job", gpu_count=0.5, duration_seconds=3600),
        ev("a2", "sub_a", "gpu_job", gpu_count=8.0, duration_seconds=0.1),
        ev("a3", "sub_a", "batch", units=1e-7), ev("a4", "sub_a", "batch", units=2.5e15),
        ev("b1", "sub_b", "job", kind=1.0), ev("b2", "sub_b", "job", kind=1), ev("b3", "sub_b", "job", kind="1.0"),
    ])
    code, err, doc = both_engines(path)
    assert (code, err) == (0, "")
    assert units(doc, "sub_a", "gpu_hours") == Decimal("0.5") + Decimal("8.0") * Decimal("0.1") / 3600
    assert units(doc, "sub_a", "batch_units") == Decimal("2500000000000000.0000001")
    groups = {ln["group"]["kind"]: ln["events"] for s in doc["subscriptions"] for ln in s["lines"]
              if ln["charge"] == "jobs" and s["external_subscription_id"] == "sub_b"}
    assert groups == {"1.0": 2, "1": 1}  # the float 1.0 reads "1.0", as the string does


def test_json_number_cents_read_the_same_in_both_engines(tmp_path):
    """precise_total_amount_cents as JSON numbers: SQLite hands 1e16 back as "1e+16"."""
    spot = [ev(f"a{i}", "sub_a", "spot", units="1") for i in range(4)]
    for e, cents in zip(spot, (1e16, 1e-05, 12.5, 7)):
        e["precise_total_amount_cents"] = cents
    path = billing(tmp_path, spot)
    code, err, doc = both_engines(path)
    assert (code, err) == (0, "")
    (line,) = [ln for ln in doc["subscriptions"][0]["lines"] if ln["charge"] == "spot"]
    assert Decimal(line["precise_amount"]) == (Decimal("1e16") + Decimal("0.00001") + Decimal("12.5") + 7) / 100


def test_objects_arrays_booleans_and_nulls_group_the_same_in_both_engines(tmp_path):
    path = billing(tmp_path, [
        ev("b1", "sub_b", "job", kind={"a": [1, 2.5], "b": None}), ev("b2", "sub_b", "job", kind=[1, "x"]),
        ev("b3", "sub_b", "job", kind=True), ev("b4", "sub_b", "job", kind=None), ev("b5", "sub_b", "job"),
        ev("b6", "sub_b", "batch", units=True), ev("b7", "sub_b", "batch", units={"n": 1}),
        ev("b8", "sub_b", "batch", units=[3]), ev("b9", "sub_b", "batch", units="2"),
    ])
    code, err, doc = both_engines(path)
    assert (code, err) == (0, "")
    (sub,) = doc["subscriptions"][1:2]
    batch = [ln for ln in sub["lines"] if ln["charge"] == "batch_units"]
    assert [(ln["units"], ln["events"], ln["ignored_events"]) for ln in batch] == [("2", 1, 3)]
    kinds = sorted(str(ln["group"].get("kind")) for ln in sub["lines"] if ln["charge"] == "jobs")
    assert kinds == sorted(["None", '{"a":[1,2.5],"b":null}', '[1,"x"]', "true"])


# ---------------------------------------------------------------- edges of a period


def test_period_edges_empty_periods_and_odd_quantities(tmp_path):
    path = billing(tmp_path, [
        ev("a1", "sub_a", "batch", ts="2026-10-01T00:00:00Z", units="1"),         # first instant: in
        ev("a2", "sub_a", "batch", ts="2026-10-31T23:59:59.999Z", units="2"),     # last instant: in
        ev("a3", "sub_a", "batch", ts="2026-11-01T00:00:00Z", units="400"),       # next period: out
        ev("a4", "sub_a", "batch", ts="2026-09-30T23:59:59.999Z", units="800"),   # previous: out
        ev("a5", "sub_a", "batch", units="-4"),                                   # negative: counted
        ev("a6", "sub_a", "batch", units="9223372036854775807"),                   # int64 max: held
        ev("a7", "sub_a", "gpu_job", gpu_count="0", duration_seconds=3600),
        ev("a8", "sub_a", "batch", ts=0, units="1"),                               # the epoch
    ])
    code, err, doc = both_engines(path)
    assert (code, err) == (0, "")
    assert units(doc, "sub_a", "batch_units") == 1 + 2 - 4 + 9223372036854775807
    assert units(doc, "sub_a", "gpu_hours") == 0
    assert units(doc, "sub_c", "batch_units") == 0  # a contract without events: its empty lines
    code, err, doc = both_engines(path, "2026-03")  # a period without any event
    assert (code, err, doc["unrated"]) == (0, "", []) and len(doc["subscriptions"]) == 3
    assert {s["total"] for s in doc["subscriptions"]} == {"0.00"}


def test_the_first_and_last_ratable_months_and_the_last_storable_instant():
    from gpubill.engine.calendar.period import parse_period_arg, resolve_period

    last_ms = 253402300799999  # 9999-12-31T23:59:59.999Z, the store's latest timestamp
    for month in ("1970-01", "9998-12"):
        per = resolve_period(*parse_period_arg(month), "monthly", "calendar", "UTC", None)
        subs = [SubscriptionSpec("a", (SUM_V,), per.from_ms, per.to_ms)]
        evs = [mev("a1", "a", ts=per.to_ms, v="1"), mev("a2", "a", ts=per.from_ms, v="2"),
               mev("a3", "a", ts=last_ms, v="4"), mev("a4", "a", ts=per.from_ms - 1, v="8")]
        assert [ln.units for ln in both(subs, evs).lines] == [3]


@pytest.mark.parametrize("period, says", [
    ("2026-13", "is not a month"), ("2026-02-30", "is not a date"), ("9999-12", "outside the years 1970..9998"),
    ("0000-01", "outside the years"), ("2026-10-01..9999-12-31", "outside the years"), ("1969-12", "outside the years"),
    ("２０２６-１０", "is not a date"), ("", "is not a date"), ("2026-10..2026-09", "is not a date"),
])
def test_a_bad_period_is_one_line_and_exit_2(tmp_path, period, says):
    path = billing(tmp_path, [ev("b1", "sub_b", "batch", units="4")])
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", period, cwd=path)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and says in r.stderr and "--period" in r.stderr


def test_an_unknown_customer_is_one_line_and_exit_1(tmp_path):
    path = billing(tmp_path, [ev("b1", "sub_b", "batch", units="4")])
    for who in ("nobody", "", "\U0001f600"):
        r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--customer", who,
                    cwd=path)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "no contract of customer" in r.stderr


# ---------------------------------------------------------------- the demo's summary


def test_the_demo_summary_says_a_subscription_was_not_rated(tmp_path):
    from gpubill.service.demo import DemoResult, summary_rows
    from gpubill.service.rating import RateReport, billed_subscriptions, load_catalog, rate_billed
    from gpubill.store import Store

    path = billing(tmp_path, [ev("a1", "sub_a", "batch", units=UNHELD), ev("b1", "sub_b", "batch", units="4")])
    catalog, _ = load_catalog([str(path / "repo")])
    billed = tuple(billed_subscriptions(catalog, "2026-10"))
    with Store(path / "b.db", readonly=True) as store:
        report = RateReport(billed, rate_billed(store, billed), catalog, {})
    result = DemoResult(str(path / "b.db"), "2026-10", 2, 0, 0, 0, 0, report, report, {}, {})
    rows = {r["contract"]: r for r in summary_rows(result)}
    assert not rows["a"]["rated"] and rows["a"]["top_line"].startswith("NOT RATED (batch_units)")
    assert rows["b"]["rated"] and rows["b"]["total"] == Decimal("4.00")


def test_the_engine_still_refuses_floats_given_to_it_directly():
    """The engine reads strings; the service turns the store's floats into them (documented)."""
    with pytest.raises(TypeError):
        rate_reference(subs_of(SUM_V, names=("a",)), [mev("a1", "a", v=0.5)])


def test_fine_values_in_a_product_plus_a_constant_do_not_stop_the_run():
    """a*b*c + 1 at 12 decimals each: the coefficients would not fit int64 at the data's scale.
    Before: EngineError for the whole run; now the fine subscription takes the exact path."""
    from gpubill.engine.spec.program import Add, Const

    expr = Add(Mul(Mul(Prop("a"), Prop("b")), Prop("c")), Const(1))
    metric = MetricSpec("abc", "e", "sum", expr=expr, property_scales={"a": -6, "b": -6, "c": -6})
    fine = "0.000000000001"
    evs = [mev("a1", "a", a=fine, b=fine, c=fine), mev("b1", "b", a="2", b="3", c="4")]
    r = both(subs_of(ChargeSpec("c", metric, Standard(1)), names=("a", "b")), evs)
    assert [ln.units for ln in r.lines] == [Decimal("1." + "0" * 35 + "1"), 25] and r.unrated == ()
