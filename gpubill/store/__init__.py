"""All persistence: one SQLite file (events, quarantine, keys, invoices, audit).

Knows the event schema, not the pricing. Imports nothing above it.
"""
