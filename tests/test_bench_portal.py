"""bench/portal.py on a tiny store, so the bench cannot rot. Nothing here measures time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "portal.py"
# per visit: each page once (9), then 2 live refreshes (--quick), the invoices, the month and the estimate again
PAGES = ("usage (now)", "usage (month)", "invoices", "invoice", "invoice pdf", "invoice line", "alerts", "estimate form",
         "estimate")


def test_quick_run_times_every_page_and_the_freshness_of_an_event(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the portal prepared 3 customers' pages" in r.stdout
    for page in PAGES:
        assert re.search(rf"^{re.escape(page)} +3 ", r.stdout, re.M), page
    assert re.search(r"^all pages: 42 requests, p50 [0-9.]+ ms, p95 [0-9.]+ ms \(goal 100 ms", r.stdout, re.M)
    assert "new event shown on the usage page after: p50" in r.stdout
