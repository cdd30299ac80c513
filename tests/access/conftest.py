"""Fixtures for the access tests: a real store file."""

import pytest

from gpubill.service.events import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()
