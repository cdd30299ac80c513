"""What ingestion reports: one status per submitted event, in input order."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np

INGESTED, DUPLICATE, CONFLICT, REJECTED, ABORTED, ACCEPTED = range(6)
# ACCEPTED: valid and durably queued in a cluster's intake (gpubill/cluster/intake.py); an ingest worker
# stores it later (its id, and whether it is a duplicate or a conflict, are decided then)
STATUS_NAMES = ("ingested", "duplicate", "conflict", "rejected", "aborted", "accepted")


@attrs.frozen
class EventResult:
    """The outcome for one submitted event.

    ``event_id`` is the stored row (for a duplicate or a conflict: the first
    copy, which is kept); ``problems`` say why an event was rejected;
    ``quarantine_id`` is its row in quarantine; ``aborted`` means the event
    was valid but not stored because its all-or-nothing batch failed.
    """

    index: int
    status: str
    event_id: int | None
    problems: tuple = ()
    quarantine_id: int | None = None
    conflict_id: int | None = None


@attrs.define
class Receipt:
    """Per-event statuses as compact arrays (10 M events stay cheap)."""

    status: np.ndarray            # int8, one of INGESTED..ACCEPTED
    event_id: np.ndarray          # int64, -1 when none
    problems: dict = attrs.field(factory=dict)        # index -> [Problem]
    quarantine_id: dict = attrs.field(factory=dict)   # index -> rejected.id
    conflict_id: dict = attrs.field(factory=dict)     # index -> conflicts.id
    timestamp_ms: np.ndarray | None = None            # int64, normalized timestamps (-1 if rejected)
    received_ms: int = 0                              # when the (last) chunk was received
    key: np.ndarray | None = None                     # int64[n, 2]: the 128-bit dedup key (0 if rejected)

    @classmethod
    def empty(cls) -> "Receipt":
        return cls(np.zeros(0, np.int8), np.zeros(0, np.int64), timestamp_ms=np.zeros(0, np.int64),
                   key=np.zeros((0, 2), np.int64))

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def counts(self) -> dict[str, int]:
        """Events per status name; "accepted" only when some were (a cluster's intake), so the
        embedded store's counts keep their five names."""
        c = np.bincount(self.status, minlength=len(STATUS_NAMES))
        out = {name: int(c[i]) for i, name in enumerate(STATUS_NAMES)}
        if not out["accepted"]:
            del out["accepted"]
        return out

    @property
    def ok(self) -> bool:
        """True when every event was stored, already present unchanged, or accepted into an intake."""
        return bool(((self.status == INGESTED) | (self.status == DUPLICATE) | (self.status == ACCEPTED)).all())

    def result(self, i: int) -> EventResult:
        eid = int(self.event_id[i])
        return EventResult(i, STATUS_NAMES[int(self.status[i])], eid if eid >= 0 else None,
                           tuple(self.problems.get(i, ())), self.quarantine_id.get(i),
                           self.conflict_id.get(i))

    def results(self) -> Iterator[EventResult]:
        for i in range(len(self)):
            yield self.result(i)

    def not_ok(self) -> Iterator[EventResult]:
        """The conflicts, rejections and aborted events, in order."""
        for i in np.flatnonzero((self.status >= CONFLICT) & (self.status <= ABORTED)).tolist():
            yield self.result(i)

    @classmethod
    def concat(cls, parts: list["Receipt"]) -> "Receipt":
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        out = cls(np.concatenate([p.status for p in parts]), np.concatenate([p.event_id for p in parts]),
                  timestamp_ms=np.concatenate([p.timestamp_ms for p in parts]),
                  received_ms=parts[-1].received_ms, key=np.concatenate([p.key for p in parts]))
        off = 0
        for p in parts:
            for mine, theirs in ((out.problems, p.problems), (out.quarantine_id, p.quarantine_id),
                                 (out.conflict_id, p.conflict_id)):
                mine.update({k + off: v for k, v in theirs.items()})
            off += len(p)
        return out
