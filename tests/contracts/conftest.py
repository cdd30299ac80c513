"""Helpers: Lago's worked examples as `.bill` catalogs, invoiced from a real store.

The catalogs are in ``bill/`` (one file per example group, each with its own
entity).  ``ingest`` sends events through the path `gpubill ingest` uses
(``service.events.ingest_file`` over JSONL bytes) into a real SQLite store in
the test's temp dir; ``invoice`` runs ``service.invoicing.invoice_period``
for one contract, as `gpubill invoice --customer` does.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gpubill.service.events import Store, ingest_file
from gpubill.service.invoicing import invoice_period

BILL = Path(__file__).resolve().parent / "bill"
LAGO_EXAMPLES = Path(__file__).resolve().parents[1] / "importer" / "lago_examples"

_tx = itertools.count(1)


def event(sub: str, code: str, at: str, **props) -> dict:
    """A Lago-shaped event (ISO timestamp, string properties) with a fresh transaction id."""
    return {"transaction_id": f"tx{next(_tx)}", "external_subscription_id": sub, "code": code,
            "timestamp": at, "properties": {k: str(v) for k, v in props.items()}}


def ingest(store: Store, events: list[dict], chunk: int = 1000) -> None:
    """Ingest ``events`` as one JSONL file, ``chunk`` events per transaction; every one must be accepted."""
    data = b"".join(orjson.dumps(e) + b"\n" for e in events)
    for rec, _ in ingest_file(store, io.BufferedReader(io.BytesIO(data)), "jsonl", chunk, "test"):
        counts = rec.counts()
        assert counts["rejected"] == counts["conflict"] == 0, counts


def ingest_lago_batch(store: Store, path: Path) -> None:
    """Ingest a Lago batch document (``{"events": [...]}``) as `gpubill ingest` reads it."""
    with open(path, "rb") as f:
        for rec, _ in ingest_file(store, f, "lago", 1000, "test"):
            counts = rec.counts()
            assert counts["rejected"] == counts["conflict"] == 0, counts


def import_lago(setup: Path, out: Path) -> Path:
    """``gpubill import lago SETUP --out OUT`` as a real subprocess; OUT, which must check."""
    r = subprocess.run([sys.executable, "-m", "gpubill", "import", "lago", str(setup), "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return out


def invoice(store: Store, bill: str, period: str, contract: str, engine: str = "fast", paths=None):
    """The invoice of ``contract`` (its name) for ``period``, from ``bill/<bill>.bill``."""
    report = invoice_period(store, paths or [str(BILL / f"{bill}.bill")], period, contract, engine)
    assert report.unrated == ()
    (inv,) = [i for i in report.invoices if i.invoice_type == "subscription"]
    return inv


def lines(inv, kind: str) -> list:
    """The invoice's fee lines of this ``kind`` (fee, usage, min_true_up, true_up, termination_credit, ...)."""
    return [f for f in inv.fees if f.kind == kind]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "gpubill.db", create=True)
    yield s
    s.close()
