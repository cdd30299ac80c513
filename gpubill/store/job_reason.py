"""A job's end reason, given to every event of the job when events are read for rating.

The agent sends a long job as segment events before it knows how the job
ends; only the job's final event carries ``end_reason``. Failure and
preemption policies credit whole jobs, so a read resolves the job's end
reason for every event: an event without ``end_reason`` that carries
``job_id`` takes the ``end_reason`` of the event with the same
(``external_subscription_id``, ``job_id``, ``attempt``) that has one (an
absent ``attempt`` is a value of its own); when several such events
disagree, the latest by timestamp wins (on equal timestamps, the later
ingested). A job whose final event is not among the events read keeps its
events without an end reason. Both engines see the same: the fast engine's
``EventColumns.dim("end_reason")`` and the reference engine's
``events_as_dicts`` resolve through ``job_end_reasons``, over dictionary ids.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .numeric import format_decimal, from_number
from .validate import dumps_any

END_REASON, JOB_ID, ATTEMPT = "end_reason", "job_id", "attempt"
_I64_LIMIT = 1 << 63


def job_end_reasons(reason: np.ndarray, timestamp_ms: np.ndarray, subscription: np.ndarray,
                    dim: Callable[[str], np.ndarray]) -> np.ndarray:
    """The events' ``end_reason`` ids (int32, -1 missing) with each job's end reason given to
    its events that lack one. ``dim(name)``: a property's dictionary ids (-1 missing), asked
    for ``job_id`` and ``attempt`` only when some event lacks an end reason."""
    if not (reason < 0).any():
        return reason
    job = dim(JOB_ID)
    rows = np.flatnonzero(job >= 0)
    if not (reason[rows] < 0).any():
        return reason
    key = _job_keys(subscription[rows], job[rows], dim(ATTEMPT)[rows])
    ended = reason[rows] >= 0
    keys, reasons = _latest_end(key[ended], timestamp_ms[rows][ended], reason[rows][ended])
    if not keys.size:
        return reason
    lacking = np.flatnonzero(~ended)
    at = np.minimum(np.searchsorted(keys, key[lacking]), keys.size - 1)
    found = keys[at] == key[lacking]
    out = reason.copy()
    out[rows[lacking[found]]] = reasons[at[found]]
    return out


def _job_keys(sub: np.ndarray, job: np.ndarray, attempt: np.ndarray) -> np.ndarray:
    """One int64 per (subscription, job, attempt) id triple (ids >= 0; attempt -1 = absent)."""
    sub, job, attempt = sub.astype(np.int64), job.astype(np.int64), attempt.astype(np.int64) + 1
    if not sub.size:
        return sub
    n_job, n_attempt = int(job.max()) + 1, int(attempt.max()) + 1
    if (int(sub.max()) + 1) * n_job * n_attempt >= _I64_LIMIT:  # ids too far apart: number the pairs
        _, pair = np.unique(sub * n_job + job if (int(sub.max()) + 1) * n_job < _I64_LIMIT
                            else np.stack([sub, job], axis=1), axis=0, return_inverse=True)
        sub, job, n_job = np.zeros_like(sub), pair.reshape(-1).astype(np.int64), int(pair.max()) + 1
    return (sub * n_job + job) * n_attempt + attempt


def _latest_end(key: np.ndarray, ts: np.ndarray, reason: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted job keys, each job's end reason): per key, the event latest by timestamp, then
    by position."""
    order = np.lexsort((np.arange(key.size), ts, key))
    key, reason = key[order], reason[order]
    last = np.ones(key.size, bool)
    last[:-1] = key[1:] != key[:-1]
    return key[last], reason[last]


def dim_text(v) -> str:
    """The string a JSON property value's dictionary id stands for in the store's columns
    (a number's canonical decimal, ``true``/``false``, compact JSON for an object or array)."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t in (int, float):
        return format_decimal(*from_number(v))
    return dumps_any(v).decode()


def resolve_in_dicts(events: list) -> None:
    """Give each job's end reason to its events without one, in Lago-shaped event dicts
    (ingestion order, ``timestamp_ms``): the rule of ``job_end_reasons``, applied in place."""
    if all(e["properties"].get(END_REASON) is not None for e in events):
        return
    ids: dict[str, int] = {}

    def column(values) -> np.ndarray:
        return np.fromiter((-1 if v is None else ids.setdefault(dim_text(v), len(ids)) for v in values),
                           np.int32, len(events))

    def dim(name: str) -> np.ndarray:
        return column(e["properties"].get(name) for e in events)

    reason = dim(END_REASON)
    resolved = job_end_reasons(reason, np.fromiter((e["timestamp_ms"] for e in events), np.int64, len(events)),
                               column(e["external_subscription_id"] for e in events), dim)
    text = {i: s for s, i in ids.items()}
    for i in np.flatnonzero(resolved != reason).tolist():
        events[i]["properties"][END_REASON] = text[int(resolved[i])]
