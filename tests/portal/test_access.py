"""Who a portal link lets in, over HTTP against a real `gpubill serve` (no browser).

A link of one customer never shows another's data, whatever the route, the
reference, the period, the method or an encoded path; it opens no API route;
a forged token is refused (403), a revoked or expired one too (410); every
request of a known link is logged as a visit; the pages carry the security
headers.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import unquote

import httpx
import pytest

from gpubill.service.access import local_actor
from gpubill.service.estimate import now_ms
from gpubill.service.events import open_event_store
from gpubill.service.portal.links import create_link, link_url

from .conftest import CUSTOMER, OTHER, PERIOD, ROOT, gpubill, invoice_docs, stored_invoices

API_ROUTES = [("GET", "/api/v1/events"), ("POST", "/api/v1/events"), ("POST", "/api/v1/events/batch"),
              ("GET", "/api/v1/events/x"), ("POST", "/api/v1/events/estimate_fees"), ("POST", "/api/v1/estimate"),
              ("GET", "/api/v1/invoices"), ("GET", "/api/v1/invoices/{inv}"), ("PUT", "/api/v1/invoices/{inv}/refresh"),
              ("PUT", "/api/v1/invoices/{inv}/finalize"), ("POST", "/api/v1/invoices/{inv}/void"),
              ("POST", "/api/v1/credit_notes"), ("GET", "/api/v1/credit_notes"), ("GET", "/api/v1/credit_notes/x"),
              ("PUT", "/api/v1/credit_notes/x/void"),
              ("GET", f"/api/v1/customers/{CUSTOMER}/current_usage"), ("GET", "/api/v1/audit_logs")]
SECURITY = {"referrer-policy": "no-referrer", "cache-control": "no-store", "x-content-type-options": "nosniff"}


@pytest.fixture(scope="module")
def other(served) -> dict:
    """What belongs to the other customer: its invoices' ids and numbers, subscriptions, names."""
    rows = stored_invoices(served.store, OTHER)
    docs = invoice_docs(served.store, OTHER)
    assert rows and docs
    return {"refs": sorted({r["lago_id"] for r in rows} | {r["number"] for r in rows if r["number"]}),
            "subscriptions": sorted({r["external_subscription_id"] for r in rows}),
            "markers": sorted({r["lago_id"] for r in rows} | {r["number"] for r in rows if r["number"]}
                              | {r["external_subscription_id"] for r in rows}
                              | {d["customer"]["name"] for d in docs} | {r["contract"] for r in rows}),
            "link": served.link(OTHER)}


@pytest.fixture(scope="module")
def mine(served) -> dict:
    return served.link(CUSTOMER)


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.url, timeout=30, follow_redirects=False) as c:
        yield c


def assert_clean(resp: httpx.Response, other: dict) -> None:
    """Nothing of the other customer in the response (body or headers), but what the request itself said (a
    page may quote a bad value back)."""
    text = resp.text + " ".join(resp.headers.values())
    asked = unquote(str(resp.request.url))
    leaked = [m for m in other["markers"] if m in text and m not in asked]
    assert not leaked, f"{resp.request.method} {resp.request.url} ({resp.status_code}) shows {leaked}"


def test_own_pages_open(http, mine, other):
    base = f"/portal/{mine['token']}"
    for page in ("/", f"/?period={PERIOD}", "/invoices", "/alerts", "/estimate"):
        r = http.get(base + page)
        assert r.status_code == 200, (page, r.status_code)
        assert "text/html" in r.headers["content-type"]
        assert_clean(r, other)
    assert http.get(base).status_code == 308  # no trailing slash: sent to the page


def test_others_invoices_are_not_found_like_missing_ones(http, served, mine, other):
    base = f"/portal/{mine['token']}/invoices"
    suffixes = ("", "/pdf", "/ubl", "/csv", "/json", "/lines/1", "/lines/2", "/lines/2?after=1-1")
    missing = {suffix: http.get(f"{base}/no-such-invoice{suffix}") for suffix in suffixes}
    assert all(r.status_code == 404 for r in missing.values())
    for ref in other["refs"]:
        for suffix in suffixes:
            r = http.get(f"{base}/{ref}{suffix}")
            assert r.status_code == 404, (ref, suffix, r.status_code)
            assert_clean(r, other)
            assert r.text == missing[suffix].text and r.headers["content-type"] == missing[suffix].headers[
                "content-type"]
    mine_refs = [row["number"] or row["lago_id"] for row in stored_invoices(served.store, CUSTOMER)]
    assert mine_refs and all(http.get(f"{base}/{ref}").status_code == 200 for ref in mine_refs)  # the route works
    assert http.get(f"{base}/{mine_refs[0]}/lines/1").status_code == 200


def test_other_subscriptions_and_periods_show_nothing_of_theirs(http, mine, other):
    base = f"/portal/{mine['token']}"
    tries = [f"/invoices/current:{s}" for s in other["subscriptions"]]
    tries += [f"/invoices/current:{s}/pdf" for s in other["subscriptions"]]
    tries += [f"/estimate?gpu_type=H200&count=1&hours=1&subscription={s}" for s in other["subscriptions"]]
    tries += [f"/?period={p}" for p in (PERIOD, "2026-10", "1970-01", "9999-12", "2026-11-15", "garbage",
                                        other["subscriptions"][0], "../" + OTHER)]
    tries += [f"/?customer={OTHER}&period={PERIOD}", f"/invoices?customer={OTHER}", f"/alerts?customer={OTHER}"]
    for path in tries:
        r = http.get(base + path)
        assert r.status_code < 500, (path, r.status_code)
        assert_clean(r, other)


def test_encoded_paths_and_other_methods(http, mine, other):
    base = f"/portal/{mine['token']}"
    theirs = other["link"]["token"]
    paths = [f"/..%2f{theirs}/", f"/%2e%2e/{theirs}/", f"/..%2F..%2Fportal%2F{theirs}%2F",
             f"/invoices/..%2f..%2f{theirs}%2finvoices", f"/invoices/{other['refs'][0]}%2f..%2f",
             f"/invoices/%2e%2e%2f{other['refs'][0]}", "/..%2f..%2fapi%2fv1%2finvoices",
             "/static/..%2f..%2fapp.py", f"/{other['refs'][0]}", "/invoices/current/../../" + theirs]
    for path in paths:
        r = http.get(base + path)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert_clean(r, other)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for page in ("/", "/invoices", f"/invoices/{other['refs'][0]}", "/estimate", "/alerts"):
            r = http.request(method, base + page, content=b"customer=" + OTHER.encode())
            assert r.status_code in (404, 405), (method, page, r.status_code)
            assert_clean(r, other)
    for path in ("/portal/static/..%2f..%2fapp.py", "/portal/static/..%2fapp.py", "/portal/static/%2e%2e/app.py",
                 "/portal/static/portal.css%00", "/portal/static/templates%2fbase.html"):
        r = http.get(path)
        assert r.status_code in (400, 403, 404) and "import" not in r.text, (path, r.status_code)
    assert http.get("/portal/static/portal.css").status_code == 200


def test_token_opens_no_api_route(http, mine, served):
    (inv,) = [r["lago_id"] for r in stored_invoices(served.store, CUSTOMER) if r["status"] == "draft"]
    for method, route in API_ROUTES:
        path = route.format(inv=inv)
        for token in (mine["token"], mine["url"]):
            r = http.request(method, path, headers={"Authorization": f"Bearer {token}"}, json={})
            assert r.status_code == 401, (method, path, r.status_code)
    r = http.put(f"/api/v1/invoices/{inv}/finalize", headers={"Authorization": f"Bearer {mine['token']}"})
    assert r.status_code == 401
    (row,) = [r for r in stored_invoices(served.store, CUSTOMER, fresh=True) if r["lago_id"] == inv]
    assert row["status"] == "draft"


def forged(token: str) -> str:
    """The token with the signature's last character changed."""
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def test_forged_tokens_are_refused(http, mine, other):
    link_id, _, sig = mine["token"].partition(".")
    assert link_id == mine["id"] and sig
    other_id = other["link"]["id"]
    for token in (forged(mine["token"]), f"{other_id}.{sig}", link_id, f"{link_id}.", "x" * 40, sig,
                  f"{link_id}.{other['link']['token'].partition('.')[2]}"):
        for page in ("/", "/invoices", "/estimate"):
            r = http.get(f"/portal/{token}{page}")
            assert r.status_code == 403, (token, page, r.status_code)
            assert "text/html" in r.headers["content-type"]
            assert_clean(r, other)
            assert CUSTOMER not in r.text


def test_revoked_link_is_gone(http, served):
    link = served.link(CUSTOMER)
    page = f"/portal/{link['token']}/"
    assert http.get(page).status_code == 200
    r = gpubill("portal", "revoke", "--store", served.store, "--link", link["id"])
    assert r.returncode == 0, r.stderr
    for p in ("", "invoices", "estimate"):
        gone = http.get(page + p)
        assert gone.status_code == 410 and "text/html" in gone.headers["content-type"]
        assert CUSTOMER not in gone.text


def test_expired_link_is_gone(http, served):
    store = open_event_store(served.store)
    try:
        made, token = create_link(store, [str(ROOT / "examples")], local_actor(store), CUSTOMER, 2000,
                                  now_ms=now_ms())
    finally:
        store.close()
    page = link_url("", token)
    assert http.get(page).status_code == 200
    deadline = time.monotonic() + 10
    while (status := http.get(page).status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert status == 410
    assert made.customer == CUSTOMER


def test_visits_are_logged(http, served):
    link = served.link(CUSTOMER)
    base = f"/portal/{link['token']}"
    asked = [(base + "/", 200), (base + "/invoices", 200), (base + "/invoices/nope", 404),
             (base + "/alerts", 200)]
    for path, status in asked:
        assert http.get(path).status_code == status
    http.post(base + "/invoices")
    r = gpubill("portal", "visits", "--store", served.store, "--link", link["id"], "--format", "json")
    assert r.returncode == 0, r.stderr
    visits = [json.loads(line) for line in r.stdout.splitlines()]  # JSON lines, newest first
    assert all(v["link"] == link["id"] and v["from"] == "127.0.0.1" for v in visits)
    got = sorted((v["method"], v["path"], v["status"]) for v in visits)
    want = sorted([("GET", p[len(base):], s) for p, s in asked] + [("POST", "/invoices", 405)])
    assert [g for g in got if g[0] == "GET"] == [w for w in want if w[0] == "GET"]
    assert any(g[0] == "POST" and g[1] == "/invoices" and g[2] in (404, 405) for g in got)


def test_security_headers(http, mine):
    base = f"/portal/{mine['token']}"
    for path, want in ((base + "/", 200), (base + "/invoices/nope", 404), (f"/portal/{forged(mine['token'])}/", 403)):
        r = http.get(path)
        assert r.status_code == want
        for k, v in SECURITY.items():
            assert r.headers.get(k) == v, (path, k, r.headers.get(k))
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp


def test_an_expired_credit_says_so(http, other):
    """Helix's onboarding credit expired on 2026-06-30: it is shown expired, never as money left to spend."""
    page = http.get(f"/portal/{other['link']['token']}/").text
    credits = page.split('<table class="credits">')[1].split("</table>")[0]
    granted = next(r for r in credits.split("<tr>") if "Jun 30, 2026" in r)
    assert granted.rstrip().endswith('<td class="num">expired</td></tr>')
    paid = next(r for r in credits.split("<tr>") if "<td>paid</td>" in r)
    assert '<data value="250000">$250,000.00</data></td></tr>' in paid


def _gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(gpubill_portal_\w+) (\S+)$", text, re.M)}


def _prepared_when_idle(url: str, least: int, within_s: float = 90) -> int:
    """The prepared-customers gauge once it reaches ``least`` with nothing left to prepare."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        g = _gauges(url)
        prepared = int(g.get("gpubill_portal_prepared_customers", 0))
        if g.get("gpubill_portal_preparing") == 0 and prepared >= least:
            return prepared
        time.sleep(0.2)
    pytest.fail(f"the portal did not prepare {least} customers within {within_s} s: {_gauges(url)}")


def test_a_customer_linked_while_the_server_runs_is_prepared_before_its_first_visit(served):
    served.link(CUSTOMER)
    before = _prepared_when_idle(served.url, 1)  # the customers linked so far in this module
    served.link("lumen-bio")  # linked only now
    served.link(CUSTOMER)  # a second link to a customer already prepared prepares nothing
    assert _prepared_when_idle(served.url, before + 1) == before + 1
    time.sleep(2.5)  # another look at the links
    assert _prepared_when_idle(served.url, before + 1) == before + 1

