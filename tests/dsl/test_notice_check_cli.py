"""`gpubill check` flags a price rise inside its notice period, counted from --today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RISE = """
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}
plan p version 1 effective 2025-01-01 to 2026-01-09 {
  currency USD
  billing monthly
  charge gpu_hours 2.00 per hour
}
plan p version 2 effective 2026-01-10 {
  currency USD
  billing monthly
  charge gpu_hours 2.50 per hour
}
"""


def check(path, *args):
    return subprocess.run([sys.executable, "-m", "gpubill", "check", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_a_rise_within_30_days_of_today_is_a_warning_with_the_earliest_date(tmp_path):
    f = tmp_path / "p.bill"
    f.write_text(RISE)
    r = check(f, "--today", "2026-01-01")
    assert r.returncode == 0 and "warning[notice-period]" in r.stderr and "2026-01-31 or later" in r.stderr
    assert check(f, "--today", "2026-01-01", "-W").returncode == 1
    assert "notice-period" not in check(f, "--today", "2025-12-01").stderr  # 40 days ahead: allowed
    assert "notice-period" not in check(f, "--today", "2026-02-01").stderr  # already in effect
    assert check(f, "--today", "Jan 1").returncode == 2
