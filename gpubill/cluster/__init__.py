"""The scale-out event store's servers: a sharded ClickHouse and a Redis Streams intake (local.py starts them for tests)."""
