"""Fixtures for the access tests: a real store file, its users, and the gpubill CLI as a subprocess."""

import subprocess
import sys

import pytest

from gpubill.service.events import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def gpubill(*args, env=None):
    """Run the real CLI; (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()
