"""Estimates over HTTP against a real `gpubill serve` on 127.0.0.1: POST /api/v1/estimate, and Lago's
POST /api/v1/events/estimate_fees through the official lago-python-client, unchanged.

The answers are the in-process estimate's (gpubill.service.estimate), which
tests/service/test_estimate.py holds equal to the invoices with the events
ingested."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.event import Event

from serverkit import client, make_key

from gpubill.service.estimate import Estimator, Job, lago_fees
from gpubill.service.events import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = str(ROOT / "examples")
OCT_1 = 1790812800  # 2026-10-01T00:00Z
AT = "2026-10-20T12:00:00Z"
AT_S = OCT_1 + 19 * 86400 + 12 * 3600


def base_events() -> list[dict]:
    return [{"transaction_id": f"b{d}", "external_subscription_id": "sub_helix_training", "code": "gpu_job",
             "timestamp": OCT_1 + d * 86400, "properties": {"gpu_type": "H100-SXM", "gpu_count": "8",
                                                            "duration_seconds": "43200", "end_reason": "completed"}}
            for d in range(1, 10)]


class EstimateServer:
    """`gpubill serve --contracts DIR`, or with $GPUBILL_CONTRACTS, or with no contracts."""

    def __init__(self, store: str, contracts: str | None, via_env: bool = False):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("GPUBILL_CONTRACTS", None)
        extra = []
        if contracts is not None and via_env:
            env["GPUBILL_CONTRACTS"] = contracts
        elif contracts is not None:
            extra = ["--contracts", contracts]
        self.proc = subprocess.Popen([sys.executable, "-m", "gpubill", "serve", "--store", store, "--port", "0",
                                      *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read().decode()}")
        self.url = line.split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("est") / "s.db")
    store = Store(db)
    store.ingest(base_events())
    store.close()
    viewer = make_key(db, "v", "viewer")
    srv = EstimateServer(db, EXAMPLES)
    yield srv, viewer, db
    srv.stop()


def in_process(db: str):
    store = Store(db, readonly=True)
    return store, Estimator(store, [EXAMPLES])


def test_estimate_is_the_cli_json(served):
    srv, viewer, db = served
    body = {"contract": "helix-labs", "gpu_type": "H100-SXM", "gpu_count": 8, "hours": "72", "at": AT}
    with client(srv, viewer) as c:
        r = c.post("/api/v1/estimate", json=body)
        by_sub = c.post("/api/v1/estimate", json={**body, "contract": None,
                                                   "external_subscription_id": "sub_helix_training"})
    assert r.status_code == 200, r.text
    store, est = in_process(db)
    e = est.estimate("helix-labs", Job("H100-SXM", Decimal(8), Decimal(72)), AT_S * 1000)
    store.close()
    doc = r.json()
    assert doc["delta"]["total_amount"] == format(e.delta.total, "f")
    assert doc["lines"][0]["units_after"] == format(e.changes[0].units_after, "f")
    assert by_sub.json() == doc


def test_estimate_errors(served):
    srv, viewer, _ = served
    with client(srv, viewer) as c:
        bad_gpu = c.post("/api/v1/estimate", json={"contract": "helix-labs", "gpu_type": "H100", "gpu_count": 8,
                                                   "hours": 1, "at": AT})
        missing = c.post("/api/v1/estimate", json={"gpu_type": "H100-SXM", "gpu_count": 8, "hours": 1})
        not_json = c.post("/api/v1/estimate", content=b"{nope")
    with client(srv, None) as c:
        anonymous = c.post("/api/v1/estimate", json={"contract": "helix-labs"})
    assert bad_gpu.status_code == 422
    assert 'did you mean "H100-SXM"?' in bad_gpu.json()["error_details"]["estimate"][0]
    assert missing.status_code == 422 and "contract" in missing.json()["error_details"]
    assert not_json.status_code == 400
    assert anonymous.status_code == 401


def lago(srv, key: str) -> Client:
    return Client(api_key=key, api_url=srv.url + "/")


def test_lago_client_estimate_fees(served):
    srv, viewer, db = served
    event = {"gpu_type": "H100-SXM", "gpu_count": "8", "duration_seconds": "7200", "end_reason": "completed"}
    got = lago(srv, viewer).events.estimate_fees(Event(
        transaction_id="ignored", external_subscription_id="sub_helix_training", code="gpu_job",
        timestamp=AT_S, properties=event))
    store, est = in_process(db)
    e = est.estimate_event("sub_helix_training", {"code": "gpu_job", "properties": event}, AT_S * 1000)
    store.close()
    want = lago_fees(e)
    fees = got["fees"]
    assert [f.amount_cents for f in fees] == [w["amount_cents"] for w in want]
    assert fees[0].item.code == "gpu_hours" and fees[0].units == "16"
    assert fees[0].amount_cents == 16 * 349 and fees[0].amount_currency == "USD"
    assert fees[0].external_subscription_id == "sub_helix_training"


def test_lago_client_estimate_fees_not_found(served):
    srv, viewer, _ = served
    with pytest.raises(LagoApiError) as err:
        lago(srv, viewer).events.estimate_fees(Event(transaction_id="x", external_subscription_id="sub_nobody",
                                                     code="gpu_job", timestamp=AT_S, properties={}))
    assert err.value.status_code == 404
    with pytest.raises(LagoApiError) as err:
        lago(srv, viewer).events.estimate_fees(Event(transaction_id="x", external_subscription_id="sub_helix_training",
                                                     code="no_such_code", timestamp=AT_S, properties={}))
    assert err.value.status_code == 404


def test_without_contracts_the_estimates_say_so(tmp_path):
    db = str(tmp_path / "s.db")
    viewer = make_key(db, "v", "viewer")
    srv = EstimateServer(db, None)
    try:
        with client(srv, viewer) as c:
            r = c.post("/api/v1/estimate", json={"contract": "helix-labs", "gpu_type": "H200", "gpu_count": 1,
                                                 "hours": 1})
    finally:
        srv.stop()
    assert r.status_code == 503 and "--contracts DIR" in r.json()["error"]


def test_contracts_from_the_environment(tmp_path):
    db = str(tmp_path / "s.db")
    viewer = make_key(db, "v", "viewer")
    srv = EstimateServer(db, EXAMPLES, via_env=True)
    try:
        with client(srv, viewer) as c:
            r = c.post("/api/v1/estimate", json={"contract": "helix-labs", "gpu_type": "H200", "gpu_count": 1,
                                                 "hours": 1, "at": AT})
    finally:
        srv.stop()
    assert r.status_code == 200, r.text
    assert r.json()["lines"][0]["units_after"] == "1"
