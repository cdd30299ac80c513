"""The customer portal's harness: the demo month in a real store, a real `gpubill serve`, links, headless Chromium.

The demo store (November 2026 invoiced) is built once per session (per xdist
worker); a module that serves it takes its own copy (``portal_store``): the
server writes visits, the live-refresh test ingests events. ``served`` runs
`gpubill serve --contracts examples --port 0` on 127.0.0.1 for the module and
makes links with `gpubill portal link`. ``browser`` is Debian's chromium
driven by chromium-driver through selenium, headless, downloads into a
folder of the module; without them the browser tests skip, with the reason,
except on CI (CI=true), where .ci/run installs them: there they fail.
``screenshot`` saves full-page PNGs at desktop and phone widths into
build/portal-screenshots/ (git-ignored) for review.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERIOD = "2026-11"  # the demo's invoiced month; "now" is later, so a monthly contract's current period is empty
CUSTOMER = "meridian-bank"  # the link's customer: one subscription, a stored draft of November
OTHER = "helix-labs"  # another customer: finalized invoices, a credit note
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = ROOT / "build" / "portal-screenshots"
WIDTHS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}  # width, height, mobile


def gpubill(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, text=True,
                          input=stdin, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})


def gpubill_json(*args):
    r = gpubill(*args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@functools.cache
def invoice_docs(store: Path, customer: str, period: str = PERIOD) -> list[dict]:
    """`gpubill invoice --format json` of the customer's period: one document per subscription (kept: a
    module's store gains visits and events of the current period, never of ``period``)."""
    return gpubill_json("invoice", "--store", store, "--contracts", "examples", "--period", period,
                        "--customer", customer)["invoices"]


def usage_amount(doc: dict) -> Decimal:
    """The sum of the document's usage lines (item.type "charge"), exact."""
    return sum((Decimal(f["amount"]) for f in doc["fees"] if f["item"]["type"] == "charge"), Decimal(0))


def stored_invoices(store: Path, customer: str, *, fresh: bool = False) -> list[dict]:
    """`gpubill invoices list --format json`, the customer's rows (read once per store unless ``fresh``)."""
    rows = _invoices_listed(store) if not fresh else gpubill_json("invoices", "list", "--store", store)
    return [i for i in rows if i["customer"] == customer]


@functools.cache
def _invoices_listed(store: Path) -> list[dict]:
    return gpubill_json("invoices", "list", "--store", store)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    """November 2026 of the demo, invoiced (the run of tests/tui's demo store); only read. Built once per test
    run: xdist's workers share it (the first builds it, under a lock, the others wait)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's folder, above each worker's own
    done = root / "portal-demo"
    with open(root / "portal-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            building = Path(tempfile.mkdtemp(prefix="portal-demo-", dir=root))
            r = gpubill("demo", "--contracts", "examples", "--dir", building / "demo", "--period", PERIOD,
                        "--events", "6000", "--seed", "7")
            assert r.returncode == 0, r.stderr
            building.rename(done)
    return done / "demo" / "gpubill.db"


@pytest.fixture(scope="module")
def portal_store(demo_store, tmp_path_factory) -> Path:
    """A copy of the demo store for one module's server (visits and new events are written to it)."""
    p = tmp_path_factory.mktemp("portal-store") / "gpubill.db"
    shutil.copy(demo_store, p)
    return p


class Served:
    """A `gpubill serve` subprocess on 127.0.0.1 over ``store`` and the example contracts."""

    def __init__(self, store: Path):
        self.store = store
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpubill", "serve", "--store", str(store), "--contracts", "examples",
             "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on http://"):
            self.stop()
            raise RuntimeError(f"gpubill serve did not start: {line!r} {self.proc.stderr.read().decode()}")
        self.url = line.split()[-1].rstrip("/")

    def link(self, customer: str = CUSTOMER, expires: str | None = None) -> dict:
        """`gpubill portal link ... --format json`: {"id", "customer", "url", "expires_at"}, plus "token"."""
        extra = ("--expires", expires) if expires else ()
        made = gpubill_json("portal", "link", "--store", self.store, "--contracts", "examples", "--customer",
                            customer, "--url", self.url, *extra)
        prefix = f"{self.url}/portal/"
        assert made["url"].startswith(prefix) and made["url"].endswith("/"), made
        return {**made, "token": made["url"][len(prefix):-1]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


@pytest.fixture(scope="module")
def served(portal_store):
    srv = Served(portal_store)
    yield srv
    srv.stop()


# ---------------------------------------------------------------- the browser


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    return None


def require_browser() -> None:
    """Skip (fail on CI) when chromium, chromium-driver or selenium are absent."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the portal's browser tests, but {reason}", pytrace=False)
    pytest.skip(reason)


def make_driver(downloads: Path, javascript: bool = True):
    """Headless chromium through chromium-driver: downloads land in ``downloads``, the performance log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(a)
    prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False,
             "download.directory_upgrade": True, "plugins.always_open_pdf_externally": True}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    opts.add_experimental_option("prefs", prefs)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("portal-downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    """One headless chromium for the module (JavaScript on)."""
    require_browser()
    driver = make_driver(downloads)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> dict[str, dict]:
    """Full-page PNGs of the page open in ``driver`` at each width of WIDTHS, into build/portal-screenshots/:
    {width name: {"path", "scroll_width" (the page's width there: wider than the screen scrolls sideways)}}.
    The phone is emulated (CDP, mobile): a window alone does not shrink below Chrome's minimum."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    saved = {}
    try:
        for label, (width, height, mobile) in WIDTHS.items():
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
            driver.execute_script("return document.body.offsetHeight")  # layout at the new width
            time.sleep(0.1)
            size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            png = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": max(height, size["height"]), "scale": 1}})
            path = SHOTS / f"{name}-{label}.png"
            path.write_bytes(base64.b64decode(png["data"]))
            saved[label] = {"path": path, "scroll_width": driver.execute_script(
                "return document.documentElement.scrollWidth")}
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return saved
