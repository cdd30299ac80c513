"""bench/peer.py's agreement check on a tiny data set, so the bench cannot rot.

gpubill's fast engine, SQL in a real SQLite file and the bare numba loop must
rate the same rows to the same GPU-milliseconds and event counts on every
(subscription, gpu_type, region) line; a query that rounds differently must
be caught.  ClickHouse is not needed here (the bench runs it when installed).
Nothing here measures time.
"""

from __future__ import annotations

import importlib
import sys
from decimal import Decimal
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def peer():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("peer")
    finally:
        sys.path.remove(str(BENCH))


def test_gpubill_sqlite_and_bare_numba_agree_exactly(peer, tmp_path):
    w = peer.Workload(3000, 20, tmp_path / "catalog")
    results = peer.check_agreement(w, tmp_path / "peer.db")
    assert list(results) == ["gpubill rate() warm", "SQLite SQL", "bare numba loop"]
    lines = results["gpubill rate() warm"]
    assert len(lines) > 100  # 20 subscriptions x 5 gpu types x 4 regions, most present
    assert sum(n for _, n in lines.values()) == int((w.cols.code == w.code).sum())  # every gpu_job, once
    assert all(ms >= 30_000 * n for ms, n in lines.values())  # at least 0.5 GPU x the 60 s minimum per event


def test_a_query_that_rounds_differently_is_caught(peer, tmp_path):
    w = peer.Workload(3000, 20, tmp_path / "catalog")
    wrong = peer.SQLITE_SQL.replace("max(60,", "max(61,")
    with peer.Sqlite(w, tmp_path / "peer.db", sql=wrong) as sq:
        results = peer.first_results([peer.Gpubill(w), sq])
    with pytest.raises(peer.Disagreement, match="SQLite SQL differs from gpubill"):
        peer.compare(results)


def test_units_that_are_not_whole_gpu_milliseconds_are_refused(peer):
    assert peer.gpu_ms(Decimal("1")) == 3_600_000
    with pytest.raises(peer.Disagreement, match="not a whole number"):
        peer.gpu_ms(Decimal("0.0000001"))
