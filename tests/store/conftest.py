"""Fixtures for store tests: a real SQLite file in a temp dir."""

import pytest

from gpubill.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    yield s
    s.close()
