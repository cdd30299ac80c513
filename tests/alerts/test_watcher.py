"""The background round of `gpubill serve --contracts`, one tick at a time (no thread, no clock)."""

from __future__ import annotations

from gpubill.service.alerts import Watcher, list_alerts

from .helpers import job


def test_a_tick_checks_only_when_events_arrived(store, contracts):
    lines: list[str] = []
    w = Watcher(store, [str(contracts)], interval_s=1, on_error=lines.append)
    store.ingest([job(0, 10), job(1, 10)])
    w.tick()
    assert [a.threshold for a in list_alerts(store)] == ["50%"]
    (contracts / "budgeted.bill").write_text((contracts / "budgeted.bill").read_text().replace("1_000 USD", "500 USD"))
    w.tick()  # nothing arrived: no check, so the lower budget is not seen yet
    assert [a.threshold for a in list_alerts(store)] == ["50%"]
    store.ingest([job(2, 1)])
    w.tick()
    assert [a.threshold for a in list_alerts(store)] == ["50%", "80%", "100%"]
    assert lines == []


def test_a_failing_check_is_reported_once_until_it_changes(store, contracts):
    lines: list[str] = []
    w = Watcher(store, [str(contracts)], interval_s=1, on_error=lines.append)
    good = (contracts / "budgeted.bill").read_text()
    (contracts / "budgeted.bill").write_text(good.replace("plan on_demand", "plan on_demnd"))
    store.ingest([job(0, 10), job(1, 10)])
    w.tick()
    w.tick()
    assert len(lines) == 1 and lines[0].startswith("alerts: ") and 'did you mean "on_demand"' in lines[0]
    (contracts / "budgeted.bill").write_text(good)
    w.tick()
    assert [a.threshold for a in list_alerts(store)] == ["50%"] and len(lines) == 1
