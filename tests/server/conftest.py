"""One real server per module, on a free port of 127.0.0.1, with a writer and a reader key."""

import pytest

from serverkit import Server, make_key


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("srv") / "s.db")
    writer = make_key(store, "w", "writer")
    reader = make_key(store, "r", "viewer")
    srv = Server(store, "--batch-limit", "500", "--max-body", "1").start()
    yield srv, writer, reader
    srv.stop()
