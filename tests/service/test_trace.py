"""Explain's event lists agree with the engine's line counts on a generated month."""

from __future__ import annotations

from pathlib import Path

from gpubill.engine.reference.trace import line_ref
from gpubill.service.demo import run_demo
from gpubill.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_traced_events_match_every_line(tmp_path):
    result = run_demo(str(ROOT / "examples"), str(tmp_path / "demo"), 4000, "2026-10", 7, Store)
    from gpubill.service.rating import trace_billed

    with Store(result.store_path, readonly=True) as store:
        traces = trace_billed(store, result.final.billed)
    checked = 0
    for line in result.final.result.lines:
        if line.kind != "usage":
            continue
        refs = traces[line.subscription].get(line_ref(line), [])
        assert sum(r.counted for r in refs) == line.event_count, (line.subscription, line.charge_id, line.filter)
        checked += line.event_count
    assert checked > 1000  # the month really was traced, not an empty comparison
