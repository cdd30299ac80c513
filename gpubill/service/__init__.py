"""Use cases wiring store <-> engine <-> contracts (rate a period, run the demo).

The shell (cli, tui, server) calls these; they hold no state of their own.
"""
