"""Prometheus counters and latency histograms, rendered in the text format.

A tiny thread-safe registry (no client library needed): counters per label
set and cumulative histograms with fixed buckets.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.events = defaultdict(int)           # status -> count
        self.requests = defaultdict(int)         # (route, code) -> count
        self.hist = {}                           # route -> [bucket counts..., +Inf, sum]
        self.gauges = {}                         # name -> (help, value): set by a part of the server

    def set_gauge(self, name: str, help_text: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = (help_text, value)

    def count_events(self, counts: dict) -> None:
        with self._lock:
            for k, v in counts.items():
                if v:
                    self.events[k] += v

    def observe(self, route: str, code: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, code)] += 1
            h = self.hist.get(route)
            if h is None:
                h = self.hist[route] = [0] * (len(BUCKETS) + 2)
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[len(BUCKETS)] += 1
            h[-1] += seconds

    def render(self, pending_events: int, intake: dict | None = None) -> str:
        """The text format; ``pending_events``: events admitted and not yet committed (a gauge);
        ``intake``: a cluster intake's lag (``Intake.lag()``), gauges when given."""
        with self._lock:
            out = ["# HELP gpubill_events_total Events by ingestion outcome.",
                   "# TYPE gpubill_events_total counter"]
            statuses = ("ingested", "duplicate", "conflict", "rejected", "aborted")
            for status in statuses + (("accepted",) if intake is not None or "accepted" in self.events else ()):
                out.append(f'gpubill_events_total{{status="{status}"}} {self.events.get(status, 0)}')
            out += ["# HELP gpubill_http_requests_total HTTP requests by route and status code.",
                    "# TYPE gpubill_http_requests_total counter"]
            for (route, code), n in sorted(self.requests.items()):
                out.append(f'gpubill_http_requests_total{{route="{route}",code="{code}"}} {n}')
            out += ["# HELP gpubill_http_pending_events Events of admitted requests waiting for the writer"
                    " (a request past --max-pending is answered 429).",
                    "# TYPE gpubill_http_pending_events gauge",
                    f"gpubill_http_pending_events {pending_events}"]
            out += ["# HELP gpubill_http_request_duration_seconds Request latency.",
                    "# TYPE gpubill_http_request_duration_seconds histogram"]
            for route, h in sorted(self.hist.items()):
                for i, b in enumerate(BUCKETS):
                    out.append(f'gpubill_http_request_duration_seconds_bucket{{route="{route}",le="{b}"}} {h[i]}')
                out.append(f'gpubill_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {h[len(BUCKETS)]}')
                out.append(f'gpubill_http_request_duration_seconds_sum{{route="{route}"}} {h[-1]:.6f}')
                out.append(f'gpubill_http_request_duration_seconds_count{{route="{route}"}} {h[len(BUCKETS)]}')
            for name, (what, value) in sorted(self.gauges.items()):
                out += [f"# HELP {name} {what}", f"# TYPE {name} gauge", f"{name} {value}"]
            if intake is not None:
                for name, key, what in (
                        ("pending_entries", "pending", "Intake entries an ingest worker read and has not stored yet."),
                        ("undelivered_entries", "undelivered", "Intake entries no ingest worker has read yet."),
                        ("waiting_events", "events", "Events in the intake not yet stored in the cluster."),
                        ("oldest_age_seconds", "oldest_age_s", "Age of the oldest intake entry not yet stored.")):
                    out += [f"# HELP gpubill_intake_{name} {what}", f"# TYPE gpubill_intake_{name} gauge",
                            f"gpubill_intake_{name} {intake[key]}"]
        return "\n".join(out) + "\n"
