"""The cluster's tables, created and migrated by gpubill on every shard.

Per shard, in the database the URL names:

* ``events_local``: one row per stored event, a ``ReplacingMergeTree(ver)``
  keyed by the dedup key ``(sub, txn)``, partitioned by the month of the
  event's timestamp. ``ver`` is ``2**63 - id``: when two copies of a key are
  stored (a batch re-delivered after a crash, a re-send through another
  server), the merge and ``FINAL`` keep the first (the smallest id). The
  copies of a duplicate carry the same timestamp, so they share a partition
  and ``FINAL`` (which merges within partitions) always sees them together.
  Properties are parallel arrays: names ``pk``, explicit string forms ``ps``
  (``px`` = 1 when the value was a JSON string), exact decimals ``pm``/``pe``
  (exponent -128: not a number), as the SQLite store's columns hold them.
* ``events``: a ``Distributed`` table over ``events_local`` sharded by
  ``cityHash64(sub)``: a subscription's events all live on one shard, so a
  per-subscription aggregation runs on that shard alone.
* ``rejected_local`` / ``rejected``: the quarantine (a ``ReplacingMergeTree``
  by id: a status change is a newer version of the row).
* ``conflicts_local`` / ``conflicts``: later copies of a key with other content.
* ``marks_local``: the intake's watermarks. A worker that has stored every
  event up to id N inserts N on every shard; readers see events up to the
  largest mark (the entry shard's), so an incremental read never skips an
  id that a slower worker stores later.
* ``meta_local``: the schema version.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
ID_VERSION = 1 << 63  # ver = ID_VERSION - id: the first copy of a key has the largest ver

EVENT_COLUMNS = ("id", "sub", "txn", "code", "ts", "ptac_m", "ptac_e", "pk", "ps", "px", "pm", "pe",
                 "raw", "received_ms", "source", "ver")
REJECTED_COLUMNS = ("id", "received_ms", "source", "raw", "reasons", "status", "resolved_event_id", "ver")
CONFLICT_COLUMNS = ("id", "received_ms", "source", "event_id", "sub", "txn", "raw")

_LOCAL_TABLES = {
    "events_local": """
        id Int64, sub String, txn String, code String, ts Int64,
        ptac_m Int64, ptac_e Int8,
        pk Array(String), ps Array(String), px Array(UInt8), pm Array(Int64), pe Array(Int8),
        raw String, received_ms Int64, source String, ver UInt64
    ) ENGINE = ReplacingMergeTree(ver)
      PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000)))
      ORDER BY (sub, txn)""",
    "rejected_local": """
        id Int64, received_ms Int64, source String, raw String, reasons String,
        status String, resolved_event_id Int64, ver UInt64
    ) ENGINE = ReplacingMergeTree(ver) ORDER BY id""",
    "conflicts_local": """
        id Int64, received_ms Int64, source String, event_id Int64, sub String, txn String, raw String
    ) ENGINE = ReplacingMergeTree ORDER BY id""",
    "marks_local": """
        at Int64, written_ms Int64
    ) ENGINE = MergeTree ORDER BY at""",
    "meta_local": """
        name String, value Int64
    ) ENGINE = ReplacingMergeTree ORDER BY name""",
}
# Distributed table -> (local table, sharding key)
_DISTRIBUTED = {"events": ("events_local", "cityHash64(sub)"),
                "rejected": ("rejected_local", "id"),
                "conflicts": ("conflicts_local", "id")}


def statements(database: str, cluster: str) -> list[str]:
    """The DDL one shard runs, in order (each idempotent)."""
    out = [f"CREATE DATABASE IF NOT EXISTS {database}"]
    for table, body in _LOCAL_TABLES.items():
        out.append(f"CREATE TABLE IF NOT EXISTS {database}.{table} ({body}")
    for table, (local, key) in _DISTRIBUTED.items():
        out.append(f"CREATE TABLE IF NOT EXISTS {database}.{table} AS {database}.{local}"
                   f" ENGINE = Distributed({cluster}, {database}, {local}, {key})")
    return out
