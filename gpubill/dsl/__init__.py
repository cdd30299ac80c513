"""The pricing language: text -> typed IR -> resolved catalog -> diagnostics.

Receives `.bill` source text; returns frozen attrs IR nodes that carry their
source spans, and diagnostics as values (never the first exception). Pure: no
I/O except `load_paths`, which reads files named by the caller.
"""
