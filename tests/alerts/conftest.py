"""Fixtures: the contracts directory of helpers.py and a real store file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpubill.service.events import Store

from .helpers import write_contracts


@pytest.fixture
def contracts(tmp_path) -> Path:
    return write_contracts(tmp_path / "contracts")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()
