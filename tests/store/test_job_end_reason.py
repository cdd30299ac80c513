"""A job's end reason is given to all its events when they are read for rating: the same in the
fast engine's columns (``read_columns().dim("end_reason")``) and the reference engine's dicts
(``events_as_dicts``), on a real store file."""

from __future__ import annotations

import numpy as np

from gpubill.store.job_reason import END_REASON, job_end_reasons

from storekit import ev

T = 1_794_268_800  # 2026-11-10T00:00:00Z, seconds


def job_ev(txn, job=None, attempt=None, reason=None, sub="sub_1", ts=T, **props):
    if job is not None:
        props["job_id"] = job
    if attempt is not None:
        props["attempt"] = attempt
    if reason is not None:
        props[END_REASON] = reason
    return ev(txn, sub=sub, ts=ts, duration_seconds="300", **props)


def reasons_read(store) -> dict:
    """transaction id -> end reason, as each engine reads it; asserts both read the same."""
    cols = store.read_columns()
    fast = dict(zip(cols.transaction_ids_of(cols.rowid), cols.strings.decode(cols.dim(END_REASON))))
    reference = {e["transaction_id"]: e["properties"].get(END_REASON) for e in store.events_as_dicts()}
    assert fast == reference
    return fast


def read(store, events) -> dict:
    assert store.ingest(events).status.tolist() == [0] * len(events)
    return reasons_read(store)


def test_segments_inherit_the_end_reason_of_their_jobs_final_event(store):
    got = read(store, [job_ev("s0", "j1", 0), job_ev("s1", "j1", 0, ts=T + 300),
                       job_ev("f", "j1", 0, "failed_infrastructure", ts=T + 600)])
    assert got == {"s0": "failed_infrastructure", "s1": "failed_infrastructure", "f": "failed_infrastructure"}


def test_a_job_without_its_final_event_yet_has_no_end_reason(store):
    got = read(store, [job_ev("s0", "j1", 0), job_ev("no-job", None, None), job_ev("f", "j2", 0, "completed")])
    assert got == {"s0": None, "no-job": None, "f": "completed"}


def test_attempts_are_jobs_apart(store):
    got = read(store, [job_ev("a0s", "j1", 0), job_ev("a0f", "j1", 0, "preempted", ts=T + 300),
                       job_ev("a1s", "j1", 1, ts=T + 400), job_ev("a1f", "j1", "1", "completed", ts=T + 700),
                       job_ev("no-attempt", "j1")])
    assert got == {"a0s": "preempted", "a0f": "preempted", "a1s": "completed", "a1f": "completed",
                   "no-attempt": None}


def test_subscriptions_are_apart(store):
    got = read(store, [job_ev("s1", "j1", 0, sub="sub_1"), job_ev("s2", "j1", 0, sub="sub_2"),
                       job_ev("f1", "j1", 0, "failed_user", sub="sub_1", ts=T + 300)])
    assert got == {"s1": "failed_user", "s2": None, "f1": "failed_user"}


def test_disagreeing_end_reasons_the_latest_by_timestamp_wins_each_keeps_its_own(store):
    got = read(store, [job_ev("late", "j1", 0, "failed_user", ts=T + 900), job_ev("s", "j1", 0),
                       job_ev("early", "j1", 0, "completed", ts=T + 600)])
    assert got == {"late": "failed_user", "s": "failed_user", "early": "completed"}


def test_the_read_window_bounds_what_a_job_inherits(store):
    store.ingest([job_ev("s", "j1", 0), job_ev("f", "j1", 0, "preempted", ts=T + 3600)])
    cols = store.read_columns(time_to_ms=T * 1000 + 60_000)
    assert cols.strings.decode(cols.dim(END_REASON)) == [None]
    (only,) = store.events_as_dicts(time_to_ms=T * 1000 + 60_000)
    assert END_REASON not in only["properties"]


def test_the_mapping_over_ids_far_apart_numbers_the_pairs():
    big = np.int32(2**31 - 1)
    sub = np.array([big, big, 5, 5], np.int32)
    job = np.array([big, big, big, big], np.int32)
    attempt = np.array([big - 1, big - 1, -1, -1], np.int32)
    reason = np.array([-1, 7, -1, 9], np.int32)
    dims = {"job_id": job, "attempt": attempt}
    got = job_end_reasons(reason, np.zeros(4, np.int64), sub, dims.__getitem__)
    assert got.tolist() == [7, 7, 9, 9]


def rule(reason, ts, sub, job, attempt) -> list:
    """The rule, one event at a time: the latest (timestamp, position) ended event of the same job."""
    latest: dict = {}
    for i in range(len(reason)):
        if job[i] >= 0 and reason[i] >= 0:
            k = (sub[i], job[i], attempt[i])
            if k not in latest or (ts[i], i) >= latest[k][0]:
                latest[k] = ((ts[i], i), reason[i])
    return [r if r >= 0 or j < 0 else latest.get((s, j, a), (None, -1))[1]
            for r, s, j, a in zip(reason, sub, job, attempt)]


def test_the_mapping_follows_the_rule_event_by_event():
    rng = np.random.default_rng(11)
    for size, ids in ((2_000, 5), (2_000, 40), (300, 10**6)):
        cols = [rng.integers(-1, ids, size).astype(np.int32) for _ in range(3)]
        reason = np.where(rng.random(size) < 0.3, rng.integers(0, 4, size), -1).astype(np.int32)
        ts = rng.integers(0, 50, size).astype(np.int64)
        sub, job, attempt = np.abs(cols[0]), cols[1], cols[2]
        dims = {"job_id": job, "attempt": attempt}
        got = job_end_reasons(reason, ts, sub, dims.__getitem__)
        assert got.tolist() == rule(reason.tolist(), ts.tolist(), sub.tolist(), job.tolist(), attempt.tolist())


def test_attempts_of_any_number_keep_their_text(store):
    """``dim`` of JSON numbers (``attempt``): negative, fractional and beyond 56 bits of mantissa."""
    for values in ([-5, -0.5, 7, -5, 0], [2**60, -(2**62), 3, 2**60]):
        store.ingest([job_ev(f"{v}-{i}-{len(values)}", "j", v) for i, v in enumerate(values)])
    cols = store.read_columns()
    assert cols.strings.decode(cols.dim("attempt")) == ["-5", "-0.5", "7", "-5", "0", str(2**60), str(-(2**62)),
                                                         "3", str(2**60)]
