"""read_columns: numpy columns, incremental, filtered; dims and exact decimals."""

from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from gpubill.store import Store
from gpubill.store.numeric import MISSING, format_decimal, parse_strict

from storekit import ev


def dec(m, e):
    return None if e == MISSING else Decimal(int(m)).scaleb(int(e))


def test_columns_are_numpy_in_ingestion_order(store):
    store.ingest([ev("a", ts=10, gpu_type="H100"), ev("b", code="tokens", ts=5, input_tokens=7)])
    c = store.read_columns()
    assert c.n == 2 and c.last_rowid == 2
    assert c.rowid.dtype == np.int64 and list(c.rowid) == [1, 2]
    assert list(c.timestamp_ms) == [10_000, 5_000]
    assert [c.strings[i] for i in c.code] == ["gpu_job", "tokens"]
    assert c.code.dtype == np.int32 and c.subscription.dtype == np.int32
    assert c.strings.decode(c.dim("gpu_type")) == ["H100", None]
    m, e = c.numeric("input_tokens")
    assert m.dtype == np.int64 and e.dtype == np.int8
    assert list(e) == [MISSING, 0] and m[1] == 7
    assert c.property_names() == ["gpu_type", "input_tokens"]


def test_incremental_reads_fetch_only_new_rows_and_never_duplicates(store):
    store.ingest([ev("a"), ev("b")])
    first = store.read_columns()
    store.ingest([ev("a"), ev("b", gpu_count=1), ev("c")])      # duplicate, conflict, new
    nxt = store.read_columns(since_rowid=first.last_rowid)
    assert nxt.n == 1 and nxt.rowid[0] > first.last_rowid   # ids may skip, never repeat
    assert store.get_event(int(nxt.rowid[0])).transaction_id == "c"
    assert store.read_columns(since_rowid=nxt.last_rowid).n == 0
    assert store.read_columns(since_rowid=nxt.last_rowid).last_rowid == nxt.last_rowid


def test_filters_bounds_are_inclusive(store):
    store.ingest([ev(f"t{i}", sub=f"s{i % 2}", code="c" if i < 5 else "d", ts=i) for i in range(10)])
    c = store.read_columns(codes=["c"], time_from_ms=1000, time_to_ms=4000, subscriptions=["s1"])
    assert list(c.timestamp_ms) == [1000, 3000]
    assert store.read_columns(codes=["never-seen"]).n == 0
    assert store.read_columns(since_rowid=8).n == 2
    c = store.read_columns(codes=["d"])
    assert c.n == 5 and c.numeric("gpu_count")[1].shape == (5,)


def test_numbers_keep_their_exact_decimal_and_lago_string_form(store):
    vals = [8, 8.0, "8", "08", 0.1, "1.50", 2.5e-7, 10**21, "-0", "1e3", True, "abc", None, {"a": 1}]
    store.ingest([ev(f"t{i}", x=v) for i, v in enumerate(vals)])
    c = store.read_columns()
    m, e = c.numeric("x")
    got = [dec(a, b) for a, b in zip(m, e)]
    assert got[:8] == [8, 8, 8, 8, Decimal("0.1"), Decimal("1.50"), Decimal("2.5E-7"), 10**21]
    assert got[9:] == [None, None, None, None, None]      # "1e3", bools, words, missing, objects
    strings = c.strings.decode(c.dim("x"))
    assert strings == ["8", "8.0", "8", "08", "0.1", "1.50", "0.00000025", "1000000000000000000000",
                       "-0", "1e3", "true", "abc", None, '{"a":1}']
    # the same string from a number and from a string shares one id
    d = c.dim("x")
    assert d[0] == d[2] != d[1]


def test_precise_total_amount_cents_is_a_numeric_column(store):
    store.ingest([{**ev("a"), "precise_total_amount_cents": "123.45"}, ev("b")])
    c = store.read_columns()
    m, e = c.precise_total_amount_cents
    assert (dec(m[0], e[0]), e[1]) == (Decimal("123.45"), MISSING)
    assert c.numeric("precise_total_amount_cents")[0][0] == 12345


def test_blocks_rebuild_from_the_rows_identically(store):
    store.ingest([ev(f"t{i}", gpu_type=["A", "B"][i % 2], gpu_count=i / 4, job_id=f"j{i // 3}")
                  for i in range(50)])
    before = store.read_columns()
    dims = {n: before.strings.decode(before.dim(n)) for n in before.property_names()}
    nums = {n: before.numeric(n) for n in before.property_names()}
    assert store.rebuild_columns() == 50
    after = store.read_columns()
    assert np.array_equal(after.rowid, before.rowid)
    assert np.array_equal(after.timestamp_ms, before.timestamp_ms)
    for n in dims:
        assert after.strings.decode(after.dim(n)) == dims[n]
        assert all(np.array_equal(a, b) for a, b in zip(after.numeric(n), nums[n]))


values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,6})?", fullmatch=True),
    st.text(max_size=8))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(values, min_size=1, max_size=3), min_size=1, max_size=40))
def test_columns_equal_a_per_event_reference(tmp_path_factory, rows):
    """The vectorized encoder agrees with a plain per-value reference."""
    with Store(tmp_path_factory.mktemp("h") / "s.db") as s:
        rec = s.ingest([ev(f"t{i}", **{f"p{k}": v for k, v in enumerate(r)}) for i, r in enumerate(rows)])
        # a JSON number the (int64, int8) pair cannot hold is refused (docs/store.md, Limits)
        assert [x.status for x in rec.results()] == [
            "ingested" if all(_reference(v) != REFUSED for v in r) else "rejected" for r in rows]
        rows = [r for r in rows if all(_reference(v) != REFUSED for v in r)]
        c = s.read_columns()
        assert c.n == len(rows)
        for k in range(3):
            m, e = c.numeric(f"p{k}")
            texts = c.strings.decode(c.dim(f"p{k}"))
            for i, r in enumerate(rows):
                v = r[k] if k < len(r) else None
                want_text, want_num = _reference(v)
                assert texts[i] == want_text, (v, texts[i])
                assert dec(m[i], e[i]) == want_num, (v, m[i], e[i])


REFUSED = ("refused", None)


def _reference(v):
    if v is None:
        return None, None
    if isinstance(v, bool):
        return ("true" if v else "false"), None
    if isinstance(v, str):
        p = parse_strict(v)
        return v, (None if p is None or p[1] == MISSING else Decimal(p[0]).scaleb(p[1]))
    if isinstance(v, int):
        m = v
        while abs(m) > 2**63 - 1 and m % 10 == 0:
            m //= 10
        return (str(v), Decimal(v)) if abs(m) <= 2**63 - 1 else REFUSED   # > 19 digits: cannot be held
    d = Decimal(repr(v))
    if not -126 <= d.as_tuple().exponent <= 127:
        return REFUSED
    sign, digits, exp = d.as_tuple()
    m = int("".join(map(str, digits))) * (-1 if sign else 1)
    text = format_decimal(m, exp)
    return text, d


def _as_plain(c):
    """Everything a read returns, decoded (dictionary ids differ between stores)."""
    names = c.property_names()
    return {"n": c.n, "last_rowid": c.last_rowid, "rowid": c.rowid.tolist(),
            "ts": c.timestamp_ms.tolist(), "code": c.strings.decode(c.code),
            "sub": c.strings.decode(c.subscription), "names": names,
            "ptac": [a.tolist() for a in c.precise_total_amount_cents],
            "dims": {n: c.strings.decode(c.dim(n)) for n in names},
            "nums": {n: [a.tolist() for a in c.numeric(n)] for n in names}}


def _mixed_events():
    out = []
    for i in range(53):
        e = ev(f"t{i}", sub=f"s{i % 3}", code=["gpu_job", "tokens"][i % 2 == 0 or i > 40],
               ts=1_735_689_600 + i, gpu_type=["A", "B", "C"][i % 3], gpu_count=i / 4, n=i)
        if i >= 30:                          # the early blocks hold no precise amount at all
            e["precise_total_amount_cents"] = f"{i}.{i % 7}"
        out.append(e)
    for k in range(7):                       # duplicates inside blocks: rowids that skip
        out.insert(5 + 6 * k, dict(out[k]))
    return out


def test_many_blocks_read_exactly_as_one_block(tmp_path):
    reads = [dict(), dict(since_rowid=17), dict(codes=["tokens"], subscriptions=["s1", "s2"]),
             dict(time_from_ms=(1_735_689_600 + 9) * 1000, time_to_ms=(1_735_689_600 + 44) * 1000)]
    got = []
    for chunk in (1000, 4):
        with Store(tmp_path / f"c{chunk}.db", chunk_size=chunk) as s:
            rec = s.ingest(_mixed_events())
            assert [x.status for x in rec.results()].count("duplicate") == 7
            blocks = s._read().execute("SELECT count(*) FROM column_blocks").fetchone()[0]
            assert blocks == (1 if chunk == 1000 else 15)
            got.append([_as_plain(s.read_columns(**r)) for r in reads])
    one, many = got
    assert one == many
    assert one[0]["n"] == 53 and one[1]["rowid"][0] == 19 and one[3]["n"] > 0


def test_a_read_leaves_the_connection_page_cache_as_it_was(store):
    """Scans shrink the reader's page cache while they read BLOBs once; later queries get it back."""
    store.ingest([ev(f"t{i}", gpu_type="A", gpu_count=i) for i in range(5)])
    db = store._read()
    before = db.execute("PRAGMA cache_size").fetchone()[0]
    c = store.read_columns()
    c.dim("gpu_type"), c.numeric("gpu_count")
    assert db.execute("PRAGMA cache_size").fetchone()[0] == before
