"""All persistence: one SQLite file (events, quarantine, keys, invoices, audit).

Receives parsed events (dicts, as from JSON) and guarantees: every event is
validated (a rejection names the field and the reason and is kept in
quarantine), deduplicated on (external_subscription_id, transaction_id) in the
same transaction as its insert, and durable once acknowledged. The engine
reads events as numpy columns (``Store.read_columns``).

Errors: ``StoreError`` (one line: the path and what is wrong), with
``StoreFull`` (the disk is full; the write was rolled back), ``StoreMissing``
(no store there and ``create=False``) and ``StoreVersionError`` (written by a
newer gpubill). ``Store.health()`` is None while writes work, else the last
write failure's line.

Knows the event schema, not the pricing. Imports nothing above it.
"""

from .columns import EventColumns, StringTable
from .receipt import EventResult, Receipt, STATUS_NAMES
from .schema import StoreError, StoreFull, StoreMissing, StoreVersionError
from .store import Store
from .validate import Problem

__all__ = ["Store", "StoreError", "StoreFull", "StoreMissing", "StoreVersionError", "Receipt",
           "EventResult", "EventColumns", "StringTable", "Problem", "STATUS_NAMES"]
