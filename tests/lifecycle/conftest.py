"""A demo month in a real store file, invoiced through the lifecycle (service calls with a fixed clock)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.store import Store
from gpubill.store.roles import Actor

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = [str(ROOT / "examples")]
ADMIN = Actor("ana", "admin")


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp() * 1000)


DEC_20 = ms(2026, 12, 20)  # every November draft is past its grace
DEC_02 = ms(2026, 12, 2)   # none is


def gpubill(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "NO_COLOR": "1", **(env or {})})


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lifecycle") / "demo"
    r = gpubill("demo", "--contracts", "examples", "--dir", folder, "--period", "2026-11",
                "--events", "6000", "--seed", "7", "--no-invoices")
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture
def store_path(demo_store, tmp_path) -> Path:
    """A fresh copy of the demo month's store for one test."""
    p = tmp_path / "gpubill.db"
    shutil.copy(demo_store, p)
    return p


@pytest.fixture
def store(store_path):
    with Store(store_path) as s:
        yield s


# An event code of each subscription whose every event costs something (a late copy changes the bill).
COSTLY = {"sub_quill_api": "fine_tune_job", "sub_meridian_mlp": "gpu_job"}


def late_event(store, subscription: str, txn: str) -> dict:
    """A copy of one of the subscription's November events, under a new transaction id (a late arrival)."""
    ev = store.events_as_dicts(codes=[COSTLY[subscription]], subscriptions=[subscription],
                               time_from_ms=ms(2026, 11, 2), time_to_ms=ms(2026, 11, 28))[0]
    ts = ev["timestamp_ms"]
    return {"transaction_id": txn, "external_subscription_id": subscription, "code": ev["code"],
            "timestamp": ts // 1000, "properties": ev["properties"]}
