"""`gpubill demo` ends in invoices: numbers, drafts, a credit note for a late event, alerts, exports that open."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from gpubill.service import lifecycle as L
from gpubill.service.access import verify_audit
from gpubill.store import Store

from .conftest import ADMIN, gpubill


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "gpubill-demo"
    r = gpubill("demo", "--dir", folder, "--events", "20000", "--seed", "2026")
    assert r.returncode == 0, r.stderr
    return folder, r.stdout


def test_the_demo_summary_names_every_invoice_with_its_status_and_totals(demo):
    folder, out = demo
    with Store(folder / "gpubill.db") as s:
        rows = L.list_invoices(s, ADMIN)
        notes = L.list_credit_notes(s, ADMIN)
    final = [r for r in rows if r.status == "finalized" and r.invoice_type == "subscription"]
    drafts = [r for r in rows if r.status == "draft"]
    assert final and drafts  # some past their grace on the run day, some not
    for r in final:
        assert r.number in out and f"{r.doc['total_amount']} {r.currency}" in out
    assert notes and all(n.number in out for n in notes)  # the late events' credit note
    assert any(r.replaces for r in rows)
    assert "alert:" in out and "late events:" in out


def test_the_demo_writes_exports_that_open(demo):
    folder, _ = demo
    invoices = folder / "invoices"
    pdfs, xmls = sorted(invoices.glob("*.pdf")), sorted(invoices.glob("*.xml"))
    assert pdfs and xmls
    assert all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    assert all(b"urn:oasis:names:specification:ubl:schema:xsd:" in x.read_bytes() for x in xmls)
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "30", "-f", "1", "-l", "1", str(pdfs[0]), str(folder / "page")],
                       check=True)
        assert list(folder.glob("page*.png"))


def test_the_demo_audit_log_verifies(demo):
    folder, _ = demo
    with Store(folder / "gpubill.db") as s:
        v = verify_audit(s)
    assert v.ok and v.size > 0, v.problem
