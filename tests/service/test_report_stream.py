"""`write_report_json` (what `gpubill rate --format json` prints) is, byte for byte,
``orjson.dumps(report_json(report), option=OPT_INDENT_2)``: fees written straight from
the engine's fee columns, every other fee through its object, on a real SQLite store."""

from __future__ import annotations

import io

import orjson
import pytest

from gpubill.engine.pricing.fees import FeeBlock
from gpubill.service.events import Store
from gpubill.service.rating import rate_period
from gpubill.service.report import report_json, write_report_json

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric deploys { event deploy count }
metric seats { event seat sum seats dimension tier in "gold", "silver" }
metric jobs { event job count }
metric tokens { event tok sum n }
plan p {
  currency USD
  billing monthly calendar
  charge deploys 25.00 per event { in advance }
  charge seats 1.005 per event {
    in advance
    group by tier
  }
  charge jobs graduated per job {
    0 to 1 at 0.05 flat 0.02
    2 and above at 0.01
  } {
    in advance
  }
  charge tokens 0.5 per event
}
contract a { customer "ca" subscription "sub_a" entity us plan p starts 2026-01-01 }
contract b { customer "cb" subscription "sub_b" entity us plan p starts 2026-01-01 }
contract c { customer "cc" subscription "sub_c" entity us plan p starts 2026-01-01 }
"""


def ev(tx, sub, code, day, **props):
    return {"transaction_id": tx, "external_subscription_id": sub, "code": code,
            "timestamp": f"2026-10-{day:02d}T10:00:{day:02d}.{day * 7:03d}Z", "properties": props}


@pytest.fixture()
def report_of(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "catalog.bill").write_text(CATALOG)
    events = [ev(f'd"{i}\\é', "sub_a", "deploy", 1 + i % 28) for i in range(40)]
    events += [ev(f"s{i}", "sub_a", "seat", 1 + i, seats=str(v), **({"tier": t} if t else {}))
               for i, (v, t) in enumerate([(3, "gold"), (-1, "gold"), (2.5, "gold"), (4, None), (1, "silver")])]
    events += [ev(f"j{i}", "sub_b", "job", 2 + i) for i in range(3)]
    events += [ev("k1", "sub_b", "tok", 3, n="12"), ev("x1", "sub_b", "deploy", 4)]
    # sub_b: a sum beyond int64 takes the exact path; sub_c: a value the store cannot hold leaves it unrated
    events += [ev("b1", "sub_b", "seat", 5, seats="1" + "0" * 30, tier="gold")]
    events += [ev("c1", "sub_c", "seat", 5, seats="1234567890123456789012345"), ev("c2", "sub_c", "deploy", 6)]
    store = Store(str(tmp_path / "b.db"), create=True)
    store.ingest(events)

    def report_of(**kw):
        return rate_period(store, [str(tmp_path / "repo")], "2026-10", **kw)

    yield report_of
    store.close()


@pytest.mark.parametrize("kw", [{}, {"explain": True}, {"engine": "reference"}, {"customer": "cb"}])
def test_streamed_json_is_byte_identical_to_the_document(report_of, kw):
    explain = kw.get("explain", False)
    report = report_of(**kw)
    if kw.get("engine") != "reference" and not kw.get("customer"):
        assert any(isinstance(p, FeeBlock) for p in report.result.in_advance.parts)
        assert report.result.unrated
    out = io.BytesIO()
    write_report_json(report, out, explain=explain)
    assert out.getvalue() == orjson.dumps(report_json(report, explain=explain), option=orjson.OPT_INDENT_2)


def test_no_subscription_rated(report_of):
    report = report_of(customer="cc")
    out = io.BytesIO()
    write_report_json(report, out)
    doc = orjson.loads(out.getvalue())
    assert doc["subscriptions"] == [] and len(doc["unrated"]) == 1
    assert out.getvalue() == orjson.dumps(report_json(report), option=orjson.OPT_INDENT_2)
