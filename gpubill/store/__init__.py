"""All persistence: one SQLite file (events, quarantine, keys, invoices, audit).

Receives parsed events (dicts, as from JSON) and guarantees: every event is
validated (a rejection names the field and the reason and is kept in
quarantine), deduplicated on (external_subscription_id, transaction_id) in the
same transaction as its insert, and durable once acknowledged. The engine
reads events as numpy columns (``Store.read_columns``).

Knows the event schema, not the pricing. Imports nothing above it.
"""

from .columns import EventColumns, StringTable
from .receipt import EventResult, Receipt, STATUS_NAMES
from .schema import StoreError, StoreVersionError
from .store import Store
from .validate import Problem

__all__ = ["Store", "StoreError", "StoreVersionError", "Receipt", "EventResult", "EventColumns",
           "StringTable", "Problem", "STATUS_NAMES"]
