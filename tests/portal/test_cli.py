"""`gpubill portal`: links made, listed, revoked and audited; bad input one line with its exit code; `portal open`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from .conftest import CUSTOMER, OTHER, ROOT, gpubill


def rows(*args) -> list[dict]:
    """A command's ``--format json`` output: one JSON object per line."""
    r = gpubill(*args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def portal(store, *args):
    return gpubill("portal", *args, "--store", store)


def link(store, customer=CUSTOMER, *extra):
    return portal(store, "link", "--contracts", "examples", "--customer", customer, *extra)


def test_link_prints_the_url_once_and_audits_it(portal_store):
    r = link(portal_store, CUSTOMER, "--expires", "12h", "--url", "https://billing.example.com/")
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    m = re.fullmatch(r"https://billing\.example\.com/portal/([0-9a-f]{12})\.[A-Za-z0-9_-]{43}/", url)
    assert m, url
    link_id = m.group(1)
    assert f"link {link_id} to the portal of {CUSTOMER}" in r.stderr
    entries = rows("audit", "log", "--store", portal_store, "--action", "portal_link")
    made = [e for e in entries if e["object_id"] == link_id]
    assert [e["action"] for e in made] == ["portal_link.created"]
    assert made[0]["payload"]["customer"] == CUSTOMER
    assert url.split("/portal/")[1].rstrip("/") not in json.dumps(entries)  # the token is never written down


def test_a_contract_name_names_its_customer(portal_store):
    made = json.loads(link(portal_store, "helix_labs", "--format", "json").stdout)
    assert made["customer"] == OTHER


@pytest.mark.parametrize("args,code,says", [
    (("--customer", "nobody"), 1, "no contract bills a customer 'nobody'"),
    (("--customer", CUSTOMER, "--expires", "10x"), 2, "--expires: expiry must be a whole number"),
    (("--customer", CUSTOMER, "--expires", "367d"), 2, "at most 366 days"),
    (("--customer", CUSTOMER, "--url", "ftp://x"), 2, "--url must start with http:// or https://"),
])
def test_bad_input_is_one_line_and_its_exit_code(portal_store, args, code, says):
    r = portal(portal_store, "link", "--contracts", "examples", *args)
    assert r.returncode == code, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_link_needs_customer_and_contracts(portal_store):
    r = portal(portal_store, "link", "--customer", CUSTOMER)
    assert r.returncode == 2 and "needs --customer and --contracts" in r.stderr


def test_list_and_revoke(portal_store):
    made = json.loads(link(portal_store, CUSTOMER, "--format", "json").stdout)
    listed = {r["id"]: r for r in rows("portal", "list", "--store", portal_store, "--customer", CUSTOMER)}
    assert listed[made["id"]]["state"] == "active" and listed[made["id"]]["visits"] == 0
    assert portal(portal_store, "revoke", "--link", made["id"]).returncode == 0
    listed = {r["id"]: r for r in rows("portal", "list", "--store", portal_store)}
    assert listed[made["id"]]["state"] == "revoked"
    again = portal(portal_store, "revoke", "--link", made["id"])
    assert again.returncode == 1 and "not revoked already" in again.stderr
    actions = [e["action"] for e in rows("audit", "log", "--store", portal_store, "--object", made["id"])]
    assert actions == ["portal_link.created", "portal_link.revoked"]


def test_only_an_approver_or_admin_shares(portal_store, tmp_path):
    store = tmp_path / "users.db"
    store.write_bytes(portal_store.read_bytes())
    for name, role in (("ana", "admin"), ("vic", "viewer"), ("pat", "approver")):
        assert gpubill("users", "add", name, "--role", role, "--store", store, "--as", "ana").returncode == 0
    refused = link(store, CUSTOMER, "--as", "vic")
    assert refused.returncode == 6 and "may not share or revoke a customer's portal link" in refused.stderr
    assert link(store, CUSTOMER, "--as", "pat").returncode == 0
    refusals = rows("audit", "log", "--store", store, "--action", "access.refused")
    assert [e["payload"]["action"] for e in refusals] == ["portal_link.create"]


def test_open_serves_a_new_link(portal_store, tmp_path):
    store = tmp_path / "open.db"
    store.write_bytes(portal_store.read_bytes())
    proc = subprocess.Popen([sys.executable, "-m", "gpubill", "portal", "open", "--store", str(store), "--contracts",
                             "examples", "--customer", CUSTOMER, "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first + proc.stderr.read()
        m = re.fullmatch(rf"portal of {CUSTOMER}: (http://127\.0\.0\.1:\d+/portal/\S+/)\n", second)
        assert m, second
        page = httpx.get(m.group(1), timeout=60)
        assert page.status_code == 200 and "Meridian Bank" in page.text
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    (row,) = [r for r in rows("portal", "list", "--store", store) if r["visits"]]  # the copy holds earlier links
    assert row["customer"] == CUSTOMER and row["visits"] == 1
    assert row["expires"] < "9999" and row["state"] == "active"
