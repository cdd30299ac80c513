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

import attrs
import numpy as np

from .numeric import format_decimal, from_number
from .validate import dumps_any

END_REASON, JOB_ID, ATTEMPT = "end_reason", "job_id", "attempt"
_SHARED = -2  # a job_id table slot: ended under several subscriptions or attempts


def job_end_reasons(reason: np.ndarray, timestamp_ms: np.ndarray, subscription: np.ndarray,
                    dim: Callable[[str], np.ndarray]) -> np.ndarray:
    """The events' ``end_reason`` ids (int32, -1 missing) with each job's end reason given to
    its events that lack one. ``dim(name)``: a property's dictionary ids (-1 missing), asked
    for ``job_id`` and ``attempt`` only when some event lacks an end reason."""
    if not (reason < 0).any():
        return reason
    job = dim(JOB_ID)
    lacking = np.flatnonzero((reason < 0) & (job >= 0))
    ended = np.flatnonzero((reason >= 0) & (job >= 0))
    if not lacking.size or not ended.size:
        return reason
    jobs = _Jobs(_dense(job, lacking, ended), subscription, dim(ATTEMPT))
    won = jobs.latest(ended, timestamp_ms)
    at, found = jobs.match(won, lacking)
    out = reason.copy()
    out[lacking[found]] = reason[won[at[found]]]
    return out


def _dense(job: np.ndarray, *rows: np.ndarray) -> np.ndarray:
    """Job ids usable as indices of a table about as long as the rows: the ids themselves when
    they are that small, else the ids numbered anew (a small read of a large store)."""
    if int(job.max()) < 4 * job.size + (1 << 16):
        return job
    used = np.concatenate(rows)
    out = np.full(job.shape, -1, np.int64)
    out[used] = np.unique(job[used], return_inverse=True)[1].reshape(-1)
    return out


@attrs.frozen
class _Jobs:
    """The job of each event: its ``job_id``, subscription and ``attempt`` ids (attempt -1 = absent)."""

    job: np.ndarray
    sub: np.ndarray
    attempt: np.ndarray

    def latest(self, ended: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Positions of each job's ended event latest by timestamp, then by position."""
        order = ended[np.lexsort((ended, ts[ended], self.attempt[ended], self.sub[ended], self.job[ended]))]
        last = np.ones(order.size, bool)
        last[:-1] = self._differ(order[1:], order[:-1])
        return order[last]

    def match(self, won: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into ``won`` of each row's job, whether it has one). Tables indexed by
        ``job_id`` find it (two look-ups a row); a ``job_id`` ended under several subscriptions
        or attempts is matched on all three."""
        jw, j = self.job[won], self.job[rows]
        count = np.bincount(jw, minlength=int(j.max()) + 1)
        size = count.size
        slot, tag = np.full(size, -1, np.int32), np.zeros(size, np.int64)
        slot[jw], tag[jw] = np.arange(won.size), self._tag(won)
        slot[count > 1] = _SHARED
        at = slot[j]
        found = (at >= 0) & (tag[j] == self._tag(rows))
        shared = np.flatnonzero(at == _SHARED)
        if shared.size:
            at[shared], found[shared] = self._match_all(won, rows[shared], count)
        return at, found

    def _tag(self, rows: np.ndarray) -> np.ndarray:
        """Subscription and attempt ids of the rows as one int64."""
        return (self.sub[rows].astype(np.int64) << 32) | (self.attempt[rows].astype(np.int64) + 1)

    def _match_all(self, won: np.ndarray, rows: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``match`` on (job_id, subscription, attempt) for rows whose job_id ended several times."""
        among = np.flatnonzero(count[self.job[won]] > 1)
        both = np.concatenate([won[among], rows])
        keys = np.stack([self.job[both], self.sub[both], self.attempt[both]], axis=1)
        group = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
        slot = np.full(int(group.max()) + 1, -1, np.int64)
        slot[group[:among.size]] = among  # one winner per job
        at = slot[group[among.size:]]
        return np.maximum(at, 0), at >= 0

    def _differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (self.job[a] != self.job[b]) | (self.sub[a] != self.sub[b]) | (self.attempt[a] != self.attempt[b])


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
