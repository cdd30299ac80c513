"""`gpubill serve` prepares a customer's pages before its first visit, also when it was linked after the start."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .conftest import Served


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


def test_a_customer_linked_while_the_server_runs_is_prepared_before_its_first_visit(portal_store):
    srv = Served(portal_store)
    try:
        srv.link("meridian-bank")  # linked right after the start: found by the first look or the next
        assert _prepared_when_idle(srv.url, 1) == 1
        srv.link("lumen-bio")
        srv.link("meridian-bank")  # a second link to a customer already prepared changes nothing
        assert _prepared_when_idle(srv.url, 2) == 2
        time.sleep(2.5)  # another look at the links
        assert _prepared_when_idle(srv.url, 2) == 2
    finally:
        srv.stop()
