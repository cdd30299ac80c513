"""bench/tui.py on a tiny store, so the bench cannot rot. Nothing here measures time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "tui.py"
MEASURED = ("query: overview", "query: customers", "query: customer_detail", "open: overview (1)",
            "open: customers (2)", "open: invoices (3)", "open: quarantine & alerts (4)", "open: diff (5)",
            "customers: filter, first key", "customers: sort (s)", "open: customer (enter)",
            "open: invoice (enter)", "back (esc)")


def test_quick_run_measures_every_screen_and_query(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reviewer TUI, 48 subscriptions, 5,000 events" in r.stdout
    for name in MEASURED:
        assert f"  {name} " in r.stdout, name
    assert "every screen and query within the goal:" in r.stdout
