"""`gpubill invoices` and `gpubill credit-note` through the real CLI, on a real store file."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from .conftest import gpubill


def _run(store_path, *args, env=None):
    return gpubill(*args, "--store", store_path, env=env)


def test_refresh_list_show_finalize_void_export(store_path, tmp_path):
    r = _run(store_path, "invoices", "refresh", "--contracts", "examples", "--period", "2026-11")
    assert r.returncode == 0, r.stderr
    drafts = json.loads(_run(store_path, "invoices", "list", "--status", "draft", "--format", "json").stdout)
    pick = next(d for d in drafts if d["contract"] == "helix_labs")
    r = _run(store_path, "invoices", "finalize", pick["lago_id"], "--contracts", "examples")
    assert r.returncode == 2 and "--yes" in r.stderr  # no terminal, no --yes: nothing changes
    r = _run(store_path, "invoices", "finalize", pick["lago_id"], "--contracts", "examples", "--yes")
    assert r.returncode == 0, r.stderr
    number = r.stdout.split()[1]
    shown = _run(store_path, "invoices", "show", number)
    assert shown.returncode == 0 and number in shown.stdout and "total due" in shown.stdout
    doc = json.loads(_run(store_path, "invoices", "show", number, "--format", "json").stdout)
    assert doc["status"] == "finalized" and doc["number"] == number
    pdf = tmp_path / "inv.pdf"
    r = _run(store_path, "invoices", "export", number, "--format", "pdf", "-o", pdf)
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")
    r = _run(store_path, "credit-note", number, "--amount", "10.00", "--reason", "other", "--yes")
    assert r.returncode == 0 and f"{number}-CN001" in r.stdout, r.stderr
    r = _run(store_path, "credit-note", number, "--amount", "1e9", "--reason", "other", "--yes")
    assert r.returncode == 1 and "at most" in r.stderr and "Traceback" not in r.stderr
    r = _run(store_path, "invoices", "void", number, "--yes")
    assert r.returncode == 2 and "--reason" in r.stderr
    r = _run(store_path, "invoices", "void", number, "--reason", "issued twice", "--yes")
    assert r.returncode == 0 and f"voided {number}" in r.stdout
    r = _run(store_path, "invoices", "show", "NWG-999-999")
    assert r.returncode == 1 and "no invoice" in r.stderr


def _finalized(store_path, contract: str) -> str:
    """November refreshed, then the contract's draft finalized through the CLI: its number."""
    assert _run(store_path, "invoices", "refresh", "--contracts", "examples", "--period", "2026-11").returncode == 0
    drafts = json.loads(_run(store_path, "invoices", "list", "--status", "draft", "--format", "json").stdout)
    pick = next(d for d in drafts if d["contract"] == contract)
    r = _run(store_path, "invoices", "finalize", pick["lago_id"], "--contracts", "examples", "--yes")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1]


def test_void_says_what_it_gives_back(store_path):
    number = _finalized(store_path, "pixelforge_studios")  # 250 USD off each of six invoices
    r = _run(store_path, "invoices", "void", number, "--reason", "issued twice", "--yes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"voided {number}: issued twice",
                                      "gives back to the next invoices: coupon discount_1 250.00 USD"]
    r = _run(store_path, "invoices", "regenerate", number, "--yes")
    assert r.returncode == 2 and "--contracts" in r.stderr
    r = _run(store_path, "invoices", "regenerate", number, "--contracts", "examples", "--yes")
    assert r.returncode == 0 and r.stdout.startswith(f"regenerated {number} as "), r.stderr
    again = r.stdout.split()[3].rstrip(":")
    shown = json.loads(_run(store_path, "invoices", "show", again, "--format", "json").stdout)
    assert (shown["status"], shown["replaces_invoice_number"]) == ("finalized", number)
    r = _run(store_path, "invoices", "regenerate", number, "--contracts", "examples", "--yes")
    assert r.returncode == 1 and "regenerated before" in r.stderr and "Traceback" not in r.stderr


def test_credit_note_void_voids_the_credit_left_once(store_path):
    number = _finalized(store_path, "helix_labs")
    assert _run(store_path, "credit-note", number, "--amount", "10.00", "--reason", "other", "--yes").returncode == 0
    r = _run(store_path, "credit-note", "void", f"{number}-CN001")
    assert r.returncode == 2 and "--reason" in r.stderr
    r = _run(store_path, "credit-note", "void", f"{number}-CN001", "--reason", "withdrawn")
    assert r.returncode == 2 and "--yes" in r.stderr  # no terminal: nothing changes without --yes
    r = _run(store_path, "credit-note", "void", f"{number}-CN001", "--reason", "withdrawn", "--yes")
    assert r.returncode == 0 and r.stdout == f"voided 10.00 USD of credit note {number}-CN001: withdrawn\n", r.stderr
    r = _run(store_path, "credit-note", "void", f"{number}-CN001", "--reason", "again", "--yes")
    assert r.returncode == 1 and "voided before" in r.stderr and "Traceback" not in r.stderr
    (listed,) = json.loads(_run(store_path, "credit-note", "list", "--invoice", number, "--format", "json").stdout)
    assert listed["credit_left"] == "0"
    r = _run(store_path, "credit-note", number, "--amount", "1.00", "--reason", "because", "--yes")
    assert r.returncode == 2 and "one of" in r.stderr


def test_a_credit_note_by_items_names_the_lines_invoices_show_numbers(store_path):
    number = _finalized(store_path, "helix_labs")
    shown = _run(store_path, "invoices", "show", number, "--format", "json")
    fees = json.loads(shown.stdout)["fees"]
    n = next(i for i, f in enumerate(fees, 1) if Decimal(f["amount"]) - Decimal(f["precise_coupons_amount"])
             - Decimal(f["precise_progressive_credit_amount"]) >= 100)
    shown = _run(store_path, "invoices", "show", number, env={"COLUMNS": "200"}).stdout
    assert re.search(rf"^│ +{n} │ {re.escape(fees[n - 1]['item']['name'])} ", shown, re.M)  # line n, numbered
    note = ("credit-note", number, "--item", f"{n}=100.00", "--reason", "other", "--yes")
    r = _run(store_path, *note, "--amount", "100.00")  # the note's amount includes the line's taxes: it says how much
    assert r.returncode == 1 and "the items add up to " in r.stderr, r.stderr
    due = r.stderr.split("the items add up to ")[1].split()[0]
    r = _run(store_path, *note, "--amount", due, "--format", "json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert [(i["fee_index"], i["amount"]) for i in made["items"]] == [(n - 1, "100.00")]
    r = _run(store_path, *note, "--format", "json")  # without --amount: what the items add up to with their taxes
    assert r.returncode == 0, r.stderr
    assert (json.loads(r.stdout)["total_amount"], json.loads(r.stdout)["items"][0]["amount"]) == (due, "100.00")
    r = _run(store_path, "credit-note", number, "--amount", "1", "--item", "0=1", "--reason", "other", "--yes")
    assert r.returncode == 2 and "from 1" in r.stderr
    r = _run(store_path, "credit-note", number, "--amount", "1", "--item", f"{len(fees) + 1}=1", "--reason", "other",
             "--yes")
    assert r.returncode == 1 and f"no line {len(fees) + 1}" in r.stderr


def test_a_viewer_may_list_but_not_finalize(store_path):
    assert _run(store_path, "users", "add", "root", "--role", "admin").returncode == 0
    assert _run(store_path, "users", "add", "vic", "--role", "viewer", "--as", "root").returncode == 0
    assert _run(store_path, "invoices", "refresh", "--contracts", "examples", "--period", "2026-11",
                "--as", "root").returncode == 0
    assert _run(store_path, "invoices", "list", "--as", "vic").returncode == 0
    r = _run(store_path, "invoices", "finalize", "--due", "--contracts", "examples", "--as", "vic")
    assert r.returncode == 6 and "approver" in r.stderr
    log = _run(store_path, "audit", "log", "--action", "access", "--format", "json")
    assert "invoice.finalize_due" in log.stdout
