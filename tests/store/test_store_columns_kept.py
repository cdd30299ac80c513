"""read_columns with filters: property columns are streamed block by block, only the kept rows
copied, and equal the unfiltered read's columns at the kept rows (values, dtypes and ids)."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from gpubill.store import Store

from storekit import ev

T0 = 1_735_689_600
# per property: JSON numbers (no stored string form), strings, numeric strings, mixes
PROPS = {
    "count": lambda i: i % 7,                                # numbers only
    "hours": lambda i: [0.5, 2.25, 1e-3, 8.0][i % 4],       # numbers only, decimals
    "gpu": lambda i: ["A100", "H100", "L40S"][i % 3],        # strings only
    "mixed": lambda i: [3, "3", "3.0", 1.5, True, "x", None][i % 7],
    "late": lambda i: i if i >= 40 else None,                # absent from the early blocks
}


def events(n=60):
    out = []
    for i in range(n):
        props = {k: f(i) for k, f in PROPS.items() if f(i) is not None}
        out.append(ev(f"t{i}", sub=f"s{i % 4}", code=["gpu_job", "tokens"][(i // 9) % 2], ts=T0 + i, **props))
    return out


def _at(full, rows):
    """The unfiltered read's columns at the given row positions."""
    dims = {n: full.dim(n)[rows] for n in PROPS}
    nums = {n: tuple(a[rows] for a in full.numeric(n)) for n in PROPS}
    return dims, nums


def _assert_read_equals_full_at_its_rows(s, full, **filters):
    got = s.read_columns(**filters)
    rows = np.flatnonzero(np.isin(full.rowid, got.rowid))
    assert np.array_equal(full.rowid[rows], got.rowid)
    dims, nums = _at(full, rows)
    for n in PROPS:
        d = got.dim(n)
        assert d.dtype == np.int32 and np.array_equal(d, dims[n]), (n, filters)
        m, e = got.numeric(n)
        assert (m.dtype, e.dtype) == (np.int64, np.int8), n
        assert np.array_equal(m, nums[n][0]) and np.array_equal(e, nums[n][1]), (n, filters)
    return got


READS = [dict(codes=["tokens"]),                                  # whole blocks dropped, others whole
         dict(subscriptions=["s1", "s3"]),                        # every block partly kept
         dict(codes=["gpu_job"], subscriptions=["s0"], time_from_ms=(T0 + 5) * 1000,
              time_to_ms=(T0 + 50) * 1000),
         dict(since_rowid=37),                                    # starts inside a block
         dict(codes=["never-seen"]),                              # nothing kept
         dict()]


def test_filtered_reads_equal_the_full_read_at_their_rows(tmp_path):
    with Store(tmp_path / "s.db", chunk_size=4) as s:
        s.ingest(events())
        full = s.read_columns()
        assert full.n == 60
        for r in READS:
            _assert_read_equals_full_at_its_rows(s, full, **r)


def test_numbers_first_seen_in_a_filtered_read_get_the_ids_a_full_read_gives(tmp_path):
    """Numbers' string forms are interned on first use: a filtered read interns only its own rows'
    numbers, with the ids the unfiltered read then finds (and decodes to the same text)."""
    with Store(tmp_path / "s.db", chunk_size=4) as s:
        s.ingest(events())
        part = s.read_columns(subscriptions=["s2"])
        ids = part.dim("hours")
        full = s.read_columns()
        rows = np.flatnonzero(np.isin(full.rowid, part.rowid))
        assert np.array_equal(full.dim("hours")[rows], ids)
        assert part.strings.decode(ids) == [["0.5", "2.25", "0.001", "8.0"][i % 4] for i in range(2, 60, 4)]


def test_a_read_only_store_reads_filtered_columns_like_a_writable_one(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, chunk_size=4) as s:
        s.ingest(events())
        want = s.read_columns(subscriptions=["s1"])
        want = {n: want.strings.decode(want.dim(n)) for n in PROPS}
    with Store(path, readonly=True) as s:
        got = s.read_columns(subscriptions=["s1"])
        assert {n: got.strings.decode(got.dim(n)) for n in PROPS} == want


def test_dims_and_numbers_load_in_any_order(tmp_path):
    with Store(tmp_path / "s.db", chunk_size=4) as s:
        s.ingest(events())
        a, b = s.read_columns(subscriptions=["s0", "s1"]), s.read_columns(subscriptions=["s0", "s1"])
        for n in PROPS:
            a.dim(n)
            a.numeric(n)
        for n in PROPS:
            b.numeric(n)
            b.dim(n)
        for n in PROPS:
            assert np.array_equal(a.dim(n), b.dim(n))
            assert all(np.array_equal(x, y) for x, y in zip(a.numeric(n), b.numeric(n)))


def test_a_read_leaves_the_connection_memory_map_as_it_was(store):
    """Scans read each page once, through a small cache and no memory map (mapped pages would
    count in the process's resident memory); the connection's own settings come back after."""
    store.ingest([ev(f"t{i}", gpu_type="A", gpu_count=i) for i in range(5)])
    db = store._read()
    before = [db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")]
    c = store.read_columns(subscriptions=["sub_1"])
    c.dim("gpu_type"), c.numeric("gpu_count"), c.transaction_ids_of(c.rowid)
    assert [db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "mmap_size")] == before


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_filter_reads_the_full_read_at_its_rows(tmp_path_factory, data):
    n = data.draw(st.integers(1, 40))
    with Store(tmp_path_factory.mktemp("k") / "s.db", chunk_size=data.draw(st.sampled_from([1, 3, 8, 100]))) as s:
        s.ingest(events(n))
        full = s.read_columns()
        subs = data.draw(st.none() | st.lists(st.sampled_from(["s0", "s1", "s2", "s3", "s9"]), max_size=3))
        codes = data.draw(st.none() | st.lists(st.sampled_from(["gpu_job", "tokens"]), max_size=2))
        lo = data.draw(st.none() | st.integers(0, n).map(lambda k: (T0 + k) * 1000))
        since = data.draw(st.integers(0, n))
        _assert_read_equals_full_at_its_rows(s, full, since_rowid=since, codes=codes, subscriptions=subs,
                                             time_from_ms=lo)


def test_property_names_are_those_of_the_blocks_read_whatever_rows_they_keep(tmp_path):
    with Store(tmp_path / "s.db", chunk_size=4) as s:
        s.ingest(events())
        for r in READS:
            assert s.read_columns(**r).property_names() == sorted(PROPS), r
