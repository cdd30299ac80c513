"""Use cases wiring store <-> engine <-> contracts.

Rate a period (``rating.py``, ``report.py``), run the demo (``demo.py``), the
event log as the shell uses it (``events.py``: open a store, ingest files and
batches with receipts, browse events and the quarantine), store failures and
their meaning (``errors.py``), API keys (``keys.py``). The shell (cli, tui,
server) calls these and never the store or the engine directly
(``tests/test_layers.py``); they hold no state of their own.
"""
