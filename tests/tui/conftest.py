"""The reviewer TUI's fixtures: the demo month in a real store, a fixed clock, an app factory.

Pilot tests are async: anyio's pytest plugin runs them (``@pytest.mark.anyio``)
on asyncio. The demo store is built once per session and only read; a test
that writes (a review action, new events) takes ``store_copy``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.service.rating import load_catalog
from gpubill.service.review import ReviewSession
from gpubill.tui.app import ReviewApp

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = [str(ROOT / "examples")]
SIZE = (120, 40)


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp() * 1000)


NOW = ms(2026, 12, 6, 9, 30)  # the day after the demo's billing run: November's drafts are pending


@pytest.fixture
def anyio_backend():
    return "asyncio"


def gpubill(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    """November 2026 of the demo, invoiced (drafts, finalized invoices, a credit note, alerts, quarantine)."""
    folder = tmp_path_factory.mktemp("tui") / "demo"
    r = gpubill("demo", "--contracts", "examples", "--dir", folder, "--period", "2026-11",
                "--events", "6000", "--seed", "7")
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture
def store_copy(demo_store, tmp_path) -> Path:
    """A copy of the demo store for a test that writes."""
    p = tmp_path / "gpubill.db"
    shutil.copy(demo_store, p)
    return p


@pytest.fixture(scope="session")
def loaded():
    """The example contracts, compiled once for every test's session (they never change here)."""
    return load_catalog(CONTRACTS)


@pytest.fixture
def make_app(demo_store, loaded):
    """``make_app(store=None, as_user=None, now_ms=NOW, period=None, contracts=None, **app)``: a ReviewApp on
    the demo store (or another) and the example contracts (or others: compiled by the session)."""
    def make(store: Path | None = None, as_user: str | None = None, now_ms: int = NOW,
             period: str | None = None, contracts: list[str] | None = None, **app) -> ReviewApp:
        session = ReviewSession.open(store or demo_store, contracts or CONTRACTS, as_user, now_ms=lambda: now_ms,
                                     period=period)
        if contracts is None:
            session.kept("catalog and sources", lambda: loaded)  # ReviewSession.loaded
        return ReviewApp(session, **app)
    return make


async def settle(pilot) -> None:
    """Wait until every worker of the app is done and its messages are handled."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
