"""A segmented job's end reason applies to the whole job: failure and preemption policies credit
every segment, through the real `gpubill invoice` on the examples, with either engine."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.agent import emit
from gpubill.agent.deliver import StoreSink
from gpubill.agent.jobs import EXEC, Allocation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOV_10 = 1_794_268_800_000  # 2026-11-10T00:00:00Z
SEGMENT_MS = emit.DEFAULT_SEGMENT_MS
WEEK_MS = 7 * 86_400_000
MERIDIAN = ("meridian-bank", "sub_meridian_mlp")      # on infrastructure failure no charge; 40 000 USD commit
PIXELFORGE = ("pixelforge", "sub_pixelforge_spot")    # on preemption credit 25%; idle utilization
MEASURED = {"avg_utilization": Decimal("0.5"), "peak_vram_gb": Decimal(10), "energy_j": Decimal(1000),
            "energy_reset": False, "sample_coverage": Decimal(1)}
ENGINES = ("fast", "reference")


def job(sub: str, job_id: str, end_reason: str, segments: int, gpus: int = 8, segment_ms: int = SEGMENT_MS) -> list:
    """A job's events as the agent sends them: ``segments - 1`` segment events without an end
    reason, then the final event with it."""
    a = Allocation(EXEC, job_id, 0, sub, NOV_10, gpu_type="H100-SXM", gpu_count=Decimal(gpus),
                   region="us-east", availability_class="on_demand")
    events = [emit.event("node-1", a, emit.SEGMENT, k, emit.segment_window(k, segment_ms), MEASURED, {})
              for k in range(segments - 1)]
    last = segments - 1
    return events + [emit.event("node-1", a, emit.FINAL, last, emit.final_window(last, segment_ms, segments * segment_ms),
                                MEASURED, {}, end_reason)]


def store_of(path: Path, *jobs: list) -> str:
    sink = StoreSink(str(path))
    sink.send([e for events in jobs for e in events])
    sink.close()
    return str(path)


def invoice(store: str, customer: str, engine: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gpubill", "invoice", "--store", store, "--contracts", str(EXAMPLES),
                          "--period", "2026-11", "--customer", customer, "--format", "json", "--engine", engine],
                         capture_output=True, check=True)
    (inv,) = json.loads(out.stdout)["invoices"]
    return inv


def totals(inv: dict) -> dict:
    return {k: inv[k] for k in ("total_amount_cents", "fees_amount_cents")}


def policy_lines(inv: dict) -> list:
    return [(f["item"]["code"], f["units"], f["amount_cents"], f["events_count"])
            for f in inv["fees"] if f["item"]["type"] == "credit"]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_infrastructure_failure_credits_every_segment_of_the_job(tmp_path, engine):
    customer, sub = MERIDIAN
    # a week on 1000 GPUs: usage above the monthly commitment, so that the job's charge shows in the total
    base = job(sub, "base", "completed", 1, gpus=1000, segment_ms=WEEK_MS)
    failed = store_of(tmp_path / "failed.db", base, job(sub, "lost-node", "failed_infrastructure", 4))
    without = store_of(tmp_path / "without.db", base)
    inv = invoice(failed, customer, engine)
    assert totals(inv) == totals(invoice(without, customer, engine))
    ((code, _, _, events),) = policy_lines(inv)
    assert code == "failed_infrastructure_credit" and events == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_a_preemption_credits_every_segment_as_it_credits_the_job_sent_as_one_event(tmp_path, engine):
    customer, sub = PIXELFORGE
    segmented = invoice(store_of(tmp_path / "seg.db", job(sub, "spot-1", "preempted", 4)), customer, engine)
    whole = invoice(store_of(tmp_path / "one.db", job(sub, "spot-1", "preempted", 1, segment_ms=4 * SEGMENT_MS)),
                    customer, engine)
    ((code, units, cents, events),) = policy_lines(segmented)
    assert code == "preempted_credit" and events == 4
    assert Decimal(units) == Decimal(-8 * 1200 * Decimal("0.5")) / 3600  # 8 GPUs, 20 minutes, half utilized
    assert [line[1:3] for line in policy_lines(whole)] == [(units, cents)]
    assert totals(segmented) == totals(whole)


def test_both_engines_invoice_a_segmented_failed_job_alike(tmp_path):
    customer, sub = MERIDIAN
    store = store_of(tmp_path / "s.db", job(sub, "a", "failed_infrastructure", 4), job(sub, "b", "preempted", 3),
                     job(sub, "c", "completed", 2), job(sub, "open", "completed", 3)[:-1])
    fast, reference = (invoice(store, customer, engine) for engine in ENGINES)
    assert fast == reference
    assert policy_lines(fast)[0][3] == 4
