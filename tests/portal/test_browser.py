"""The customer portal in real headless Chromium against a real `gpubill serve` (issue 16).

One server (on a copy of the demo store) and one browser per module. A
customer opens its link and reads usage and an invoice total equal to
`gpubill invoice` to the cent, downloads the PDF, runs an estimate by
keyboard, sees a new event without reloading; the pages work without
JavaScript, load nothing from any other host, and are saved as screenshots
at desktop and phone widths (build/portal-screenshots/).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import (
    CUSTOMER, PERIOD, WIDTHS, gpubill, gpubill_json, invoice_docs, make_driver, require_browser, screenshot,
    stored_invoices, usage_amount,
)

WAIT_S = 10  # a page's first render computes the period: generous; the live refresh has its own 5 s


@pytest.fixture(scope="module")
def link(served) -> dict:
    return served.link(CUSTOMER)


def by(css: str):
    from selenium.webdriver.common.by import By
    return By.CSS_SELECTOR, css


def wait_for(driver, css: str, timeout: float = WAIT_S):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located(by(css)))


def exact(driver, css: str) -> Decimal:
    """The exact amount of the ``<data value>`` inside the element ``css``."""
    el = driver.find_element(*by(css))
    value = el.get_attribute("value") if el.tag_name == "data" else el.find_element(*by("data")).get_attribute("value")
    return Decimal(value)


def open_page(driver, url: str, css: str):
    driver.get(url)
    return wait_for(driver, css)


def draft_of(store: Path) -> dict:
    """The customer's stored draft of November (the demo leaves it pending)."""
    (row,) = [i for i in stored_invoices(store, CUSTOMER) if i["status"] == "draft" and i["period"] == PERIOD]
    return row


# ---------------------------------------------------------------- amounts to the cent


def test_usage_page_equals_gpubill_invoice(browser, served, link):
    (doc,) = invoice_docs(served.store, CUSTOMER)
    open_page(browser, link["url"] + f"?period={PERIOD}", "#usage-total data")
    assert exact(browser, "#usage-total") == usage_amount(doc) > 0
    assert exact(browser, "#draft-total") == Decimal(doc["total_amount"])
    assert doc["customer"]["name"] in browser.title
    events = int(browser.find_element(*by("#event-count")).text.replace(",", ""))
    per_day = [int(td.get_attribute("textContent").replace(",", ""))
               for td in browser.find_elements(*by("#by-day tbody tr td:last-child"))]
    assert len(per_day) == 30 and sum(per_day) == events > 0
    types = [th.text for th in browser.find_elements(*by("#by-gpu-type tbody th"))]
    charged = {f["dimensions"]["gpu_type"] for f in doc["fees"] if "gpu_type" in (f.get("dimensions") or {})}
    assert charged and charged <= set(types)
    assert browser.find_elements(*by("#by-region tbody th"))
    assert browser.find_elements(*by("#live svg rect")), "the chart has no bars"


def test_invoice_page_equals_gpubill_invoice(browser, served, link):
    (doc,) = invoice_docs(served.store, CUSTOMER)
    row = draft_of(served.store)
    open_page(browser, link["url"] + f"invoices/{row['lago_id']}", "#invoice-total data")
    assert exact(browser, "#invoice-total") == Decimal(doc["total_amount"]) == Decimal(row["total_amount"])
    shown = sorted(Decimal(d.get_attribute("value")) for d in browser.find_elements(*by("#invoice-lines data")))
    for fee in doc["fees"]:
        assert Decimal(fee["amount"]) in shown, fee["item"]["name"]
    names = browser.find_element(*by("#invoice-lines")).get_attribute("textContent")
    assert all(f["item"]["name"] in names for f in doc["fees"])


def test_invoices_list_links_to_each_invoice(browser, served, link):
    mine = stored_invoices(served.store, CUSTOMER)
    open_page(browser, link["url"] + "invoices", "main")
    hrefs = {a.get_attribute("href") for a in browser.find_elements(*by("main a[href]"))}
    for row in mine:
        ref = row["number"] or row["lago_id"]
        assert link["url"] + f"invoices/{ref}" in hrefs
    text = browser.find_element(*by("main")).get_attribute("textContent")
    assert all(row["number"] in text for row in mine if row["number"])


def test_pdf_download(browser, served, link, downloads):
    row = draft_of(served.store)
    open_page(browser, link["url"] + f"invoices/{row['lago_id']}", 'a[data-format="pdf"]')
    before = set(downloads.iterdir())
    browser.find_element(*by('a[data-format="pdf"]')).click()
    deadline = time.monotonic() + WAIT_S
    got = []
    while time.monotonic() < deadline:
        got = [p for p in set(downloads.iterdir()) - before if p.suffix == ".pdf"]
        if got and got[0].stat().st_size > 0:
            break
        time.sleep(0.1)
    assert got, f"no PDF downloaded into {downloads}: {sorted(p.name for p in downloads.iterdir())}"
    assert got[0].read_bytes().startswith(b"%PDF")
    for fmt in ("csv",):  # a draft is given as PDF and CSV (never UBL)
        assert browser.find_element(*by(f'a[data-format="{fmt}"]')).get_attribute("href").endswith(f"/{fmt}")


# ---------------------------------------------------------------- the estimate


def fill(driver, name: str, text: str) -> None:
    from selenium.webdriver.support.ui import Select
    el = driver.find_element(*by(f'#estimate-form [name="{name}"]'))
    if el.tag_name == "select":
        Select(el).select_by_value(text)
    else:
        el.clear()
        el.send_keys(text)


def test_estimate_by_keyboard(browser, served, link):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, link["url"] + "estimate", "#estimate-form")
    form = browser.find_element(*by("#estimate-form"))
    assert (form.get_attribute("method") or "get").lower() == "get"
    for name in ("gpu_type", "count", "hours", "region", "class"):
        field = form.find_element(*by(f'[name="{name}"]'))
        labels = browser.find_elements(*by(f'label[for="{field.get_attribute("id")}"]'))
        assert labels and labels[0].text.strip(), f"{name} has no label"
    fill(browser, "gpu_type", "H200")
    fill(browser, "count", "2")
    fill(browser, "hours", "10")
    form.find_element(*by('[name="hours"]')).send_keys(Keys.ENTER)
    wait_for(browser, "#estimate-delta data")
    assert "gpu_type=H200" in browser.current_url and "hours=10" in browser.current_url
    want = gpubill_json("estimate", "--store", served.store, "--contracts", "examples", "--contract", CUSTOMER,
                        "--gpu", "H200", "--count", "2", "--hours", "10")
    assert exact(browser, "#estimate-delta") == Decimal(want["delta"]["total_amount"])
    lines = browser.find_element(*by("#estimate-lines")).get_attribute("textContent")
    assert len(browser.find_elements(*by("#estimate-lines tbody tr"))) >= len(want["lines"]) > 0
    assert all(line["name"] in lines for line in want["lines"])


def test_estimate_bad_input_is_said(browser, link):
    open_page(browser, link["url"] + "estimate?gpu_type=H200&count=two&hours=1", "#estimate-form")
    assert not browser.find_elements(*by("#estimate-delta"))
    assert "count" in browser.find_element(*by("main")).text


# ---------------------------------------------------------------- live refresh


def test_new_event_shows_within_5s(browser, served, link):
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, link["url"], "#event-count")
    before = browser.find_element(*by("#event-count")).text
    browser.execute_script("window.__not_reloaded = true")
    now = datetime.now(timezone.utc)
    event = {"transaction_id": f"portal-live-{now.timestamp()}", "external_subscription_id": "sub_meridian_mlp",
             "code": "gpu_job", "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
             "properties": {"duration_seconds": "600", "gpu_count": "1", "gpu_type": "H200",
                            "region": "us-west", "availability_class": "reserved", "avg_utilization": "0.9",
                            "end_reason": "completed", "job_id": "job-portal-live"}}
    r = gpubill("ingest", "-", "--store", served.store, "--input-format", "jsonl", stdin=json.dumps(event) + "\n")
    assert r.returncode == 0, r.stderr
    count = int(before.replace(",", ""))
    WebDriverWait(browser, 5).until(
        lambda d: d.find_element(*by("#event-count")).text.replace(",", "") == str(count + 1))
    assert browser.execute_script("return window.__not_reloaded === true"), "the page was reloaded"


# ---------------------------------------------------------------- no JavaScript, no third party, screenshots


@pytest.fixture(scope="module")
def no_js_browser(tmp_path_factory):
    require_browser()
    driver = make_driver(tmp_path_factory.mktemp("portal-nojs"), javascript=False)
    yield driver
    driver.quit()


def test_pages_work_without_javascript(no_js_browser, served, link):
    (doc,) = invoice_docs(served.store, CUSTOMER)
    d = no_js_browser
    d.get("data:text/html,<title>off</title><script>document.title = 'on'</script>")
    assert d.title == "off", "the browser runs JavaScript"
    open_page(d, link["url"] + f"?period={PERIOD}", "#usage-total data")
    assert exact(d, "#draft-total") == Decimal(doc["total_amount"])
    for table in ("#by-gpu-type", "#by-region", "#by-day"):
        assert d.find_elements(*by(f"{table} tbody tr")), table
    assert d.find_elements(*by("#live svg rect"))
    open_page(d, link["url"] + "estimate", "#estimate-form")
    d.get(link["url"] + "estimate?gpu_type=H200&count=1&hours=2")
    assert d.find_elements(*by("#estimate-delta data"))


def test_nothing_loaded_from_another_host(browser, served, link):
    browser.get_log("performance")  # what earlier tests loaded: not this test's
    row = draft_of(served.store)
    pages = ("", f"?period={PERIOD}", "invoices", f"invoices/{row['lago_id']}", "alerts",
             "estimate?gpu_type=H200&count=1&hours=1")
    seen = set()
    for page in pages:
        open_page(browser, link["url"] + page, "main")
        seen |= set(browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"))
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            seen.add(message["params"]["request"]["url"])
    assert any(u.endswith("/portal/static/portal.css") for u in seen), seen
    others = {u for u in seen if not u.startswith(served.url + "/") and not u.startswith("data:")}
    assert not others


def test_an_invoice_line_opens_down_to_its_jobs(browser, served, link):
    """From the invoice, a usage line's link: its amount, and the jobs behind it, as many as the line counts."""
    (doc,) = invoice_docs(served.store, CUSTOMER)
    row = draft_of(served.store)
    open_page(browser, link["url"] + f"invoices/{row['lago_id']}", "#invoice-lines a")
    first = next(i for i, f in enumerate(doc["fees"]) if f["item"]["kind"] == "usage" and 0 < f["events_count"] < 200)
    browser.find_elements(*by("#invoice-lines tbody th a"))[first].click()
    wait_for(browser, "#line-amount data")
    assert exact(browser, "#line-amount") == Decimal(doc["fees"][first]["amount"])
    jobs = browser.find_elements(*by("#line-events tbody tr"))
    assert len(jobs) == doc["fees"][first]["events_count"]
    assert all(r.find_element(*by("th")).text for r in jobs)  # each names its job (or event)


@pytest.mark.parametrize("name, page, css", [
    ("usage", f"?period={PERIOD}", "#usage-total data"),
    ("invoice", "invoices/{draft}", "#invoice-total data"),
    ("estimate", "estimate?gpu_type=H200&count=2&hours=10", "#estimate-delta data"),
    ("line", "invoices/{draft}/lines/1", "#line-amount data"),
])
def test_screenshots(browser, served, link, name, page, css):
    open_page(browser, link["url"] + page.format(draft=draft_of(served.store)["lago_id"]), css)
    shots = screenshot(browser, name)
    assert set(shots) == set(WIDTHS)
    for label, (width, height, _) in WIDTHS.items():
        png = shots[label]["path"].read_bytes()
        assert png.startswith(b"\x89PNG")
        assert int.from_bytes(png[16:20], "big") == width and int.from_bytes(png[20:24], "big") >= height
        assert shots[label]["scroll_width"] <= width, f"{name} scrolls sideways at {label} width"
