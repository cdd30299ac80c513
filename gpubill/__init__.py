"""gpubill: pricing as code for GPU compute.

Layers (arrows point one way, see docs/architecture.md):
core (no I/O)  dsl -> engine -> contracts
store          all persistence (SQLite)
service        use cases wiring store <-> engine <-> contracts
shell          cli, tui, server, agent
"""

__version__ = "0.1.0"
