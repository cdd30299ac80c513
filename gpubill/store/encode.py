"""Turn a chunk of parsed events into validated, column-encoded data.

``prepare(objs, now_ms, max_future_ms, raws=None)`` is the ingestion fast
path. It measures each event (the length of its raw text when given, else its
compact JSON, serialized here once and kept for ``payload_of``), checks the
top-level fields as columns, then checks and encodes each property *column*
at once (type sets, numpy range checks), and falls back to
``validate.check_event`` only for the events the fast path cannot settle, so
every rejection still names its field and reason, and both paths give the
same verdict.

Parsed events are cold objects scattered in memory, and touching them is
most of the cost, so each is read as few times as possible: the events of
one shape (the usual case: one per code) are read in one pass over their
keys and one over their values (``_same_shape``), ids are checked joined
(``_ids_ok``) and hashed from one encode, and a column is
dictionary-encoded in one pass (``_factorize``), its distinct values
checked after.

The result, a ``Chunk``, holds the valid events' canonical values as numpy
arrays, their dedup keys, their JSON payload, and per property a
dictionary-encoded string column and/or an exact decimal column.
"""

from __future__ import annotations

import math
import re
from hashlib import blake2b
from itertools import chain, compress, count, repeat
from operator import is_not

import attrs
import numpy as np
import orjson

from .payloads import select
from .numeric import MAX_FRACTION_DIGITS, MISSING, floats_to_decimal, from_number, held, parse_strict
from .validate import (CANONICAL, ID_BAD_CHARS, MAX_EVENT_BYTES, MAX_ID_LEN, MAX_KEYS, MAX_STRING,
                       MAX_TS_MS, SURROGATE, Problem, check_event, check_value, dumps_any)

LAZY = -2  # dim id placeholder: "the canonical string of this number" (resolved on read)
_NONE = type(None)
_STRINGY = {"gpu_type", "interconnect", "region", "model_name", "job_id"}
_I64_MIN = -(2**63)  # fits an int64 column but not the (mantissa, exponent) pair: |mantissa| <= 2**63 - 1
_TOP = ("transaction_id", "external_subscription_id", "code", "timestamp", "properties")  # the fast path's fields
_TOP_SET = frozenset(_TOP)
_GROUP_MIN = 64  # events of one code read as a group (see _segments) from this many
_NUMERIC_START = re.compile("[-0-9]")  # how a strictly numeric string starts
_ABSENT = object()  # dict.get's default: a property the event does not hold


@attrs.define
class PropColumn:
    """One property over the chunk's valid events.

    ``strings`` are the distinct explicit string forms; ``sid`` indexes them
    (-1 missing, ``LAZY`` = canonical string of the number in m/e), or is None
    when every present value is a number. ``m``/``e`` are None when no value is
    strictly numeric.
    """

    strings: list
    sid: np.ndarray | None
    m: np.ndarray | None
    e: np.ndarray | None

    def take(self, idx: np.ndarray) -> "PropColumn":
        return PropColumn(self.strings,
                          None if self.sid is None else self.sid[idx],
                          None if self.m is None else self.m[idx],
                          None if self.e is None else self.e[idx])


@attrs.define
class Chunk:
    """Validated events of one chunk (positions refer to the input list)."""

    n_in: int
    good: np.ndarray                      # int64 input positions of valid events
    rejected: dict                        # input position -> list[Problem]
    objs: list                            # the valid events (parsed)
    txn: list
    sub: list
    code: list
    ts_ms: np.ndarray
    k1: np.ndarray
    k2: np.ndarray
    ptac: dict                            # position in good -> (m, e)
    props: dict                           # name -> PropColumn
    code_dict: tuple = ((), None)         # (distinct codes, int index of each valid event)
    sub_dict: tuple = ((), None)          # the same for subscriptions
    repeats: tuple = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # (later copy, first copy)
    payload: tuple | None = None          # (compact JSON of every input event, int64 lengths, -1 none)


def _hash_keys(txn: list, sub: list, sub_dict: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """128-bit dedup key: blake2b(txn) with the subscription's hash folded in.

    k1 (the first 64 bits) depends on the transaction id alone, so it also
    serves lookups by transaction id (Lago's GET /events/{transaction_id}).
    Ingestion refuses ids with lone surrogates; a lookup by such an id hashes
    it with ``surrogatepass`` (it matches nothing stored) instead of failing.
    ``sub_dict``: ``_factorize(sub)`` when the caller has it.
    """
    subs, inv = _factorize(sub) if sub_dict is None else sub_dict
    raw = b"".join([blake2b(b, digest_size=16).digest() for b in _utf8_each(txn)])
    kk = np.frombuffer(raw, "<i8").reshape(-1, 2)
    sh = np.frombuffer(b"".join([blake2b(b, digest_size=8, person=b"gpubill-sub").digest()
                                 for b in _utf8_each(subs)]), "<i8")
    return kk[:, 0].copy(), kk[:, 1] ^ sh[inv]


def _utf8_each(strings: list) -> list[bytes]:
    """Each string's UTF-8 bytes (a lone surrogate kept, ``surrogatepass``).

    One encode of the strings joined by NUL, split again, when no string holds
    a NUL (stored ids never do): each string object is read once, by the join.
    """
    joined = "\0".join(strings)
    if joined.count("\0") != len(strings) - 1:
        return [s.encode("utf-8", "surrogatepass") for s in strings]
    return joined.encode("utf-8", "surrogatepass").split(b"\0")


def _sizes(objs: list, raws: list | None) -> tuple[np.ndarray, tuple | None]:
    """Bytes each event's stored payload takes (-1: none), and the payloads built for it.

    With ``raws`` (the events' original texts) their lengths, nothing built;
    else each JSON object is serialized once here (``payload_of`` reuses it).
    """
    n = len(objs)
    if raws is not None:
        return np.fromiter(map(len, raws), np.int64, n), None
    dumps = orjson.dumps
    out = bytearray()
    lens: list[int] = []
    add = lens.append
    for o in objs:  # one at a time: orjson's buffers are reused when freed at once
        if type(o) is not dict:
            add(-1)
            continue
        try:
            b = dumps(o)
        except TypeError:  # integers beyond 64 bits, lone surrogates, ...
            try:
                b = dumps_any(o)
            except (TypeError, ValueError):
                add(-1)
                continue
        out += b
        add(len(b))
    sizes = np.array(lens, np.int64)
    return sizes, (bytes(out), sizes)


def _ids_ok(col: list) -> bool:
    """Every value is a string of 1 to ``MAX_ID_LEN`` characters without a control character or
    a lone surrogate.

    One join reads each value once. ASCII ids (the usual case) are then one byte
    array in which the NUL separators, and only they, are below 0x20 (a control
    character in an id adds one), so they also give each id's length.
    """
    try:
        joined = "\0".join(col)
    except TypeError:  # not all strings
        return False
    if not joined.isascii():
        lens = np.fromiter(map(len, col), np.int64, len(col))
        return (lens.min() > 0 and lens.max() <= MAX_ID_LEN
                and ID_BAD_CHARS.search("".join(col)) is None)
    b = np.frombuffer(joined.encode("ascii"), np.uint8)
    ends = np.flatnonzero(b < 0x20)
    if len(ends) != len(col) - 1 or (b.size and int(b.max()) >= 0x7F):
        return False
    lens = np.diff(ends, prepend=-1, append=len(b)) - 1
    return bool(lens.min() > 0 and lens.max() <= MAX_ID_LEN)


def _fast_columns(objs: list, hi_s: int, sizes: np.ndarray):
    """Column-wise check of the top-level fields; None if any event needs the slow path.

    Else (transaction ids, subscriptions, codes, timestamps in ms, properties,
    the subscriptions' and the codes' ``_factorize``).
    """
    if not objs or set(map(type, objs)) != {dict}:
        return None
    if sizes.min() < 0 or sizes.max() > MAX_EVENT_BYTES:
        return None  # unmeasured or too large
    cols = _same_shape(objs)
    if cols is None:  # fields in several orders (or sets: then the type checks below fail)
        if max(map(len, objs)) > len(_TOP):
            return None
        cols = {k: list(map(dict.get, objs, repeat(k))) for k in _TOP}
    if set(cols) != _TOP_SET:
        return None  # a field missing, or one beyond the five (precise amount, extras)
    txns, subs, codes, tss, props = (cols[k] for k in _TOP)
    try:
        sub_dict, code_dict = _factorize(subs), _factorize(codes)
    except TypeError:  # an array or object where an id belongs: the slow path says so
        return None
    if not all(map(_ids_ok, (txns, sub_dict[0], code_dict[0]))):  # few distinct subs, codes
        return None
    if set(map(type, tss)) != {int}:
        return None
    try:
        ts = np.array(tss, np.int64)
    except OverflowError:
        return None
    if ts.min() < 0 or ts.max() > hi_s:
        return None
    if set(map(type, props)) != {dict} or max(map(len, props)) > MAX_KEYS:
        return None
    return txns, subs, codes, ts * 1000, props, sub_dict, code_dict


def _same_shape(dicts: list) -> dict | None:
    """{key: its values} when every dict holds the first one's keys in its order, else None.

    One pass over the dicts' keys and one over their values (cold objects are
    touched twice, not once per key); each column is cut from the flat values.
    Producers send one shape per kind of event, so this is the usual case.
    """
    keys = list(dicts[0])
    k, n = len(keys), len(dicts)
    if set(map(len, dicts)) != {k}:
        return None
    flat = list(chain.from_iterable(dicts))
    if any(flat[j::k].count(key) != n for j, key in enumerate(keys)):
        return None
    vals = list(chain.from_iterable(map(dict.values, dicts)))
    return {key: vals[j::k] for j, key in enumerate(keys)}


def _factorize(vals: list) -> tuple[list, np.ndarray]:
    """(distinct values in first-seen order, index of each value into them).

    One pass over the values (each value's first position, by ``setdefault``),
    the rest in numpy. Raises TypeError for an unhashable value.
    """
    n = len(vals)
    first: dict = {}
    at = np.fromiter(map(first.setdefault, vals, count()), np.int64, n)
    starts = np.flatnonzero(at == np.arange(n))  # where each value first occurs, in order
    ids = np.empty(n, np.int64)
    ids[starts] = np.arange(len(starts))
    return [vals[i] for i in starts.tolist()], ids[at]


def prepare(objs: list, now_ms: int, max_future_ms: int, raws: list | None = None) -> Chunk:
    """Validate and encode one chunk of parsed events.

    ``raws``: the events' original texts when the caller stores those (their
    lengths are what the size limit counts); None to serialize them here.
    """
    rejected: dict[int, list[Problem]] = {}
    ptac_at: dict[int, tuple[int, int]] = {}
    hi_s = min(now_ms + max_future_ms, MAX_TS_MS) // 1000
    sizes, payload = _sizes(objs, raws)
    fast = _fast_columns(objs, hi_s, sizes)
    if fast is not None:
        txns, subs, codes, tss, props, sub_dict, code_dict = fast
        good = list(range(len(objs)))
    else:
        good, txns, subs, codes, tss, props = _slow_rows(objs, now_ms, max_future_ms, rejected, ptac_at, sizes)
        sub_dict, code_dict = _factorize(subs), _factorize(codes)
    cols, bad = _encode_props(props, code_dict[1])
    if bad:
        # Some property values failed a column check: settle those events exactly.
        for j in sorted(bad):
            _, problems = check_event(objs[good[j]], now_ms, max_future_ms, int(sizes[good[j]]))
            rejected[good[j]] = problems or [Problem("properties", "invalid", "invalid property value")]
        keep = [j for j in range(len(good)) if j not in bad]
        remap = {old: new for new, old in enumerate(keep)}
        ptac_at = {remap[j]: v for j, v in ptac_at.items() if j in remap}
        good = [good[j] for j in keep]
        txns = [txns[j] for j in keep]
        subs = [subs[j] for j in keep]
        codes = [codes[j] for j in keep]
        props = [props[j] for j in keep]
        tss = np.asarray(tss, np.int64)[np.asarray(keep, np.int64)]
        sub_dict, code_dict = _factorize(subs), _factorize(codes)
        cols, bad = _encode_props(props, code_dict[1])
        assert not bad
    k1, k2 = _hash_keys(txns, subs, sub_dict) if txns else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Chunk(len(objs), np.asarray(good, np.int64), rejected, [objs[i] for i in good],
                 txns, subs, codes, np.asarray(tss, np.int64), k1, k2, ptac_at,
                 cols, code_dict, sub_dict,
                 _repeats(k1, k2), payload)


def _repeats(k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of keys repeated inside the chunk, and of their first occurrence."""
    n = len(k1)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n < 2:
        return none
    o = np.lexsort((k2, k1))  # stable: equal keys stay in input order
    s1, s2 = k1[o], k2[o]
    start = np.ones(n, bool)
    start[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    if start.all():
        return none
    first = o[np.maximum.accumulate(np.where(start, np.arange(n), 0))]
    return o[~start], first[~start]


def _slow_rows(objs, now_ms, max_future_ms, rejected, ptac_at, sizes):
    good, txns, subs, codes, tss, props = [], [], [], [], [], []
    for i, o in enumerate(objs):
        norm, problems = check_event(o, now_ms, max_future_ms, int(sizes[i]))
        if problems:
            rejected[i] = problems
            continue
        if norm.precise_total_amount_cents is not None:
            ptac_at[len(good)] = norm.precise_total_amount_cents
        good.append(i)
        txns.append(norm.transaction_id)
        subs.append(norm.external_subscription_id)
        codes.append(norm.code)
        tss.append(norm.timestamp_ms)
        props.append(norm.properties)
    return good, txns, subs, codes, tss, props


def _encode_props(props: list, codes: np.ndarray) -> tuple[dict, set]:
    """Check and encode every property column of the chunk's valid events.

    ``props[i]`` is event i's properties (a dict), ``codes[i]`` its code's
    dictionary id. Each column is encoded over the events that hold the
    property only (``_segments``), then spread over the chunk. Returns the
    columns and the positions of the events some column check refused.
    """
    cols: dict[str, PropColumn] = {}
    bad: set[int] = set()
    n = len(props)
    if not n:
        return cols, bad
    for name, parts in _segments(props, codes).items():
        pos = parts[0][0] if len(parts) == 1 else np.concatenate([p for p, _ in parts])
        vals = parts[0][1] if len(parts) == 1 else list(chain.from_iterable(v for _, v in parts))
        if type(name) is not str or len(name) > MAX_ID_LEN or _any_surrogate((name,)):
            bad.update(pos.tolist())
            continue
        col, b = _encode_column(name, vals)
        if b:
            bad.update(pos[np.fromiter(b, np.int64, len(b))].tolist())
        in_order = len(pos) == n and bool((pos[1:] > pos[:-1]).all())  # every event, in order
        cols[name] = col if in_order else _spread(col, pos, n)
    return cols, bad


def _encode_column(name, vals) -> tuple[PropColumn, set]:
    """One property's values (None: explicit null) as a column, and the indices of refused values."""
    chk = CANONICAL.get(name)
    if type(vals[0]) is str:  # likely strings: their distinct values' types tell (one pass, not two)
        try:
            factorized = _factorize(vals)
        except TypeError:  # an array or object among them
            factorized = None
        if factorized is not None and set(map(type, factorized[0])) <= {str, _NONE}:
            return _strings(name, vals, chk, factorized)
    types = set(map(type, vals))
    nulls = _NONE in types
    types.discard(_NONE)
    if types <= {str}:
        return _strings(name, vals, chk)
    if name in _STRINGY:
        return _mixed(name, vals, chk)
    if types <= {int}:
        return _ints(vals, chk, _present(vals, nulls))
    if types == {float}:
        return _floats(name, vals, chk, _present(vals, nulls))
    if types == {int, float}:
        return _numbers(name, vals, chk)
    return _mixed(name, vals, chk)


def _present(vals: list, nulls: bool) -> np.ndarray:
    """Which values are not None (a pass over them only when some is)."""
    if not nulls:
        return np.ones(len(vals), bool)
    return np.fromiter(map(is_not, vals, repeat(None)), bool, len(vals))


def _spread(col: PropColumn, pos: np.ndarray, n: int) -> PropColumn:
    """A column over the events at ``pos`` as a column over all ``n`` events (the others missing)."""
    sid = m = e = None
    if col.sid is not None:
        sid = np.full(n, -1, np.int32)
        sid[pos] = col.sid
    if col.m is not None:
        m = np.zeros(n, np.int64)
        e = np.full(n, MISSING, np.int8)
        m[pos], e[pos] = col.m, col.e
    return PropColumn(col.strings, sid, m, e)


def _segments(props: list, codes: np.ndarray) -> dict:
    """name -> [(positions of the events holding it, their values), ...].

    Events of one code usually share one key set (a producer sends one shape
    per code, in one key order): such a group is read by ``_same_shape``.
    Small groups and groups of other shapes are read with ``_keywise``.
    """
    out: dict = {}
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    cut = np.flatnonzero(sc[1:] != sc[:-1]) + 1
    rest = []
    for pos in np.split(order, cut):
        cols = _same_shape([props[i] for i in pos.tolist()]) if len(pos) >= _GROUP_MIN else None
        if cols is None:
            rest.append(pos)
            continue
        for name, vals in cols.items():
            out.setdefault(name, []).append((pos, vals))
    if rest:
        pos = np.concatenate(rest)
        for name, part in _keywise([props[i] for i in pos.tolist()], pos):
            out.setdefault(name, []).append(part)
    return out


def _keywise(props: list, pos: np.ndarray):
    """(name, (positions, values)) of each property name of these events, read key by key."""
    for name in set().union(*props):
        vals = list(map(dict.get, props, repeat(name), repeat(_ABSENT)))
        has = np.fromiter(map(is_not, vals, repeat(_ABSENT)), bool, len(vals))
        yield name, (pos[has], list(compress(vals, has)))


def _any_surrogate(strings) -> bool:
    """Whether any of these strings holds a lone surrogate (one pass; none at all if all ASCII)."""
    joined = "".join(strings)
    return not joined.isascii() and SURROGATE.search(joined) is not None


def _string_bad(s: str, chk) -> bool:
    """Too long, a lone surrogate, or refused by the canonical check."""
    return len(s) > MAX_STRING or _any_surrogate((s,)) or (chk is not None and chk(s) is not None)


def _strings_bad(strings: list, chk) -> list:
    """Indices of the distinct strings of a column that are refused (too long, a lone
    surrogate, or not what the canonical check wants), without a call per string where the
    check is a length or a set of values."""
    kind = getattr(chk, "kind", None)
    if _any_surrogate(strings) or not (chk is None or kind in ("text", "one_of")):
        return [k for k, s in enumerate(strings) if _string_bad(s, chk)]
    lens = np.fromiter(map(len, strings), np.int64, len(strings))
    badm = lens > MAX_STRING
    if kind == "text":
        badm |= lens == 0
    elif chk is not None:
        badm |= ~np.fromiter(map(chk.allowed.__contains__, strings), bool, len(strings))
    return np.flatnonzero(badm).tolist()


def _strings(name, vals, chk, factorized=None):
    strings, inv = _factorize(vals) if factorized is None else factorized
    sid = inv.astype(np.int32)
    if None in strings:  # absent: id len(strings) until the end, then -1
        k = strings.index(None)
        del strings[k]
        sid[inv > k] -= 1
        sid[inv == k] = len(strings)
    bad_u = _strings_bad(strings, chk)
    um = np.zeros(len(strings) + 1, np.int64)
    ue = np.full(len(strings) + 1, MISSING, np.int8)
    anynum = False
    for k in np.flatnonzero(np.fromiter(map(_NUMERIC_START.match, strings), bool, len(strings))).tolist():
        p = parse_strict(strings[k])
        if p is not None:
            um[k], ue[k] = p
            anynum = True
    bad = set(np.flatnonzero(np.isin(sid, bad_u)).tolist()) if bad_u else set()
    m = um[sid] if anynum else None
    e = ue[sid] if anynum else None
    sid[sid == len(strings)] = -1
    return PropColumn(strings, sid, m, e), bad


def _ints(vals, chk, present):
    n = len(vals)
    allp = bool(present.all())
    try:
        arr = np.array(vals if allp else [v for v in vals if v is not None], np.int64)
    except OverflowError:
        return _mixed("", vals, chk)
    if arr.size and arr.min() == _I64_MIN:
        return _mixed("", vals, chk)
    bad = _range_bad(arr, present, chk)
    if allp:
        return PropColumn([], None, arr, np.zeros(n, np.int8)), bad
    m = np.zeros(n, np.int64)
    e = np.full(n, MISSING, np.int8)
    m[present] = arr
    e[present] = 0
    return PropColumn([], None, m, e), bad


def _range_bad(arr, present, chk) -> set:
    if chk is None or not arr.size:
        return set()
    kind = getattr(chk, "kind", None)  # validate._quantity's checkers; others want strings
    with np.errstate(invalid="ignore"):
        badm = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        if kind == "fraction":
            badm |= (arr < 0) | (arr > 1)
        elif kind in ("nonneg", "count"):
            badm |= arr < 0
        else:
            badm[:] = True  # a number where a string is required
    if kind == "count" and arr.dtype.kind == "f":
        badm[:] = True
    if not badm.any():
        return set()
    return set(np.flatnonzero(present)[badm].tolist())


def _floats(name, vals, chk, present):
    n = len(vals)
    allp = bool(present.all())
    arr = np.array(vals if allp else [v for v in vals if v is not None], np.float64)
    if not np.isfinite(arr).all() or chk is not None and _range_bad(arr, present, chk):
        return _mixed(name, vals, chk)
    fm, fe = floats_to_decimal(arr)
    if not _floats_held(fe, chk):
        return _mixed(name, vals, chk)
    if allp:
        return PropColumn([], None, fm, fe), set()
    m = np.zeros(n, np.int64)
    e = np.full(n, MISSING, np.int8)
    m[present], e[present] = fm, fe
    return PropColumn([], None, m, e), set()


def _floats_held(fe: np.ndarray, chk) -> bool:
    """Every float is held exactly (for a canonical quantity: surely within its bounds)."""
    if chk is not None:  # e in -18..0 is surely within bounds; the rest is settled value by value
        return bool(((fe >= -MAX_FRACTION_DIGITS) & (fe <= 0)).all())
    return bool(held(fe).all())


_KIND = {_NONE: 0, int: 1, float: 2}


def _numbers(name, vals, chk):
    """A column of JSON integers and floats (``gpu_count``: 8 and 0.5), without a per-value loop."""
    n = len(vals)
    kind = np.fromiter(map(_KIND.__getitem__, map(type, vals)), np.int8, n)
    ii, fi = np.flatnonzero(kind == 1), np.flatnonzero(kind == 2)
    try:
        iv = np.array([vals[i] for i in ii.tolist()], np.int64)
    except OverflowError:
        return _mixed(name, vals, chk)
    if iv.size and iv.min() == _I64_MIN:
        return _mixed(name, vals, chk)
    fv = np.array([vals[i] for i in fi.tolist()], np.float64)
    if not np.isfinite(fv).all():
        return _mixed(name, vals, chk)
    if chk is not None and (_range_bad(iv, np.ones(iv.shape[0], bool), chk)
                            or _range_bad(fv, np.ones(fv.shape[0], bool), chk)):
        return _mixed(name, vals, chk)  # settles exactly which values are bad
    fm, fe = floats_to_decimal(fv)
    if not _floats_held(fe, chk):
        return _mixed(name, vals, chk)
    m = np.zeros(n, np.int64)
    e = np.full(n, MISSING, np.int8)
    m[ii], e[ii] = iv, 0
    m[fi], e[fi] = fm, fe
    return PropColumn([], None, m, e), set()


def _mixed(name, vals, chk):
    """Slow per-value path: floats, bools, nested values, mixed types."""
    n = len(vals)
    m = np.zeros(n, np.int64)
    e = np.full(n, MISSING, np.int8)
    sid = np.full(n, -1, np.int32)
    strings: dict[str, int] = {}
    bad: set[int] = set()
    fpos, fval = [], []
    for i, v in enumerate(vals):
        if v is None:
            continue
        t = type(v)
        if t is float:
            if not math.isfinite(v):
                bad.add(i)
                continue
            fpos.append(i)
            fval.append(v)
            sid[i] = LAZY
        elif t is int:
            m[i], e[i] = from_number(v)
            if not held(e[i]):  # a JSON number is meant as a number: refused if it cannot be held
                bad.add(i)
                continue
            sid[i] = LAZY
        elif t is str:
            if _string_bad(v, None):
                bad.add(i)
                continue
            p = parse_strict(v)
            if p is not None:
                m[i], e[i] = p
            sid[i] = strings.setdefault(v, len(strings))
        elif t is bool:
            sid[i] = strings.setdefault("true" if v else "false", len(strings))
        else:
            problems: list = []
            check_value(name, v, 1, problems)
            if problems:
                bad.add(i)
                continue
            sid[i] = strings.setdefault(dumps_any(v).decode(), len(strings))
        if chk is not None and chk(v):
            bad.add(i)
    if fpos:
        fm, fe = floats_to_decimal(np.array(fval, np.float64))
        idx = np.array(fpos, np.int64)
        m[idx], e[idx] = fm, fe
        bad.update(idx[~held(fe)].tolist())  # cannot be held exactly: refused, as integers
    anynum = bool((e != MISSING).any())
    return PropColumn(list(strings), sid, m if anynum else None, e if anynum else None), bad


def payload_of(chunk: Chunk, raws: list | None) -> tuple[bytes, np.ndarray]:
    """The valid events' raw payloads end to end, and each one's length: what the writer stores
    in the chunk's block (``payloads.py``). Built here, on the validating thread."""
    if raws is not None:
        sel = [raws[i] for i in chunk.good.tolist()]
        return b"".join(sel), np.fromiter(map(len, sel), np.int64, len(sel))
    if chunk.payload is not None:  # prepare serialized every input event (-1: not serialized)
        buf, sizes = chunk.payload
        return select(buf, np.maximum(sizes, 0), chunk.good)
    dumps = orjson.dumps
    out = bytearray()
    ls: list[int] = []
    add = ls.append
    for o in chunk.objs:  # one at a time: orjson's buffers are reused when freed at once
        try:
            b = dumps(o)
        except TypeError:  # integers beyond 64 bits
            b = dumps_any(o)
        out += b
        add(len(b))
    return bytes(out), np.array(ls, np.int64)


# Re-exported for the writer's content comparison.
__all__ = ["Chunk", "PropColumn", "prepare", "payload_of", "LAZY", "dumps_any"]
