"""The stored events themselves: each chunk's raw payloads inside its column block.

Schema 5 keeps no row per event. A chunk's accepted events live in its
``column_blocks`` row: their raw JSON payloads (the source of truth, as sent)
end to end, cut into frames of ``FRAME`` events, each frame compressed with
zstd (level 1: JSON events shrink about 7 times for 0.5 µs each, and the
store is written about a fifth as much) and stored end to end in ``raw``;
``frame_end`` holds each compressed frame's end offset, ``raw_end`` each
payload's end offset in the uncompressed stream (both int64), and
``batch_id`` the batch they came in (``batch_ids``, one per event, when a
block spans batches: a store migrated from schema 4). Ids, timestamps and keys
are the block's own columns (``first_rowid``/``rowids``, ``ts``, ``keys``).
The block is written with one INSERT per chunk, so SQLite's work per event is a
memcpy instead of a B-tree row.

``read(db, ids)`` finds events by id: the covering blocks through the
``last_rowid`` index, then only the frames holding them (incremental BLOB I/O
reads just those pages; a frame decompresses in about 0.1 ms), or the whole
``raw`` when most of a block is wanted. ``blocks(db, ...)`` walks the blocks'
ids, timestamps, codes and subscriptions (never their payloads) for listings
and counts.
"""

from __future__ import annotations

import attrs
import numpy as np
import zstandard

_I64, _I32 = np.dtype("<i8"), np.dtype("<i4")
FRAME = 256  # events per compressed frame: what a lookup of one event decompresses
_LEVEL = 1
# a block whose wanted payloads are more than this share of it is read whole, not payload by payload
_WHOLE_SHARE = 0.25


@attrs.frozen
class Stored:
    """One stored event as the store holds it."""

    id: int
    timestamp_ms: int
    batch_id: int
    raw: bytes
    key: tuple[int, int]


def pack(payloads: bytes, lens: np.ndarray) -> tuple[bytes, bytes, bytes]:
    """(raw, raw_end, frame_end) of a block: its payloads in compressed frames of ``FRAME`` events,
    each payload's end offset (uncompressed), each frame's end offset (compressed).

    zstd releases the GIL while it compresses: the next chunk is validated meanwhile."""
    ends = np.cumsum(lens, dtype=_I64)
    cuts = np.concatenate([[0], ends[FRAME - 1::FRAME], ends[-1:] if len(ends) % FRAME else []]).astype(_I64)
    segments = np.stack([cuts[:-1], np.diff(cuts)], axis=1).astype("<u8")
    # every frame in one call: the GIL is released once per chunk, not once per frame (each time
    # the writer thread takes it back it may wait a switch interval for the validating thread)
    out = zstandard.ZstdCompressor(level=_LEVEL).multi_compress_to_buffer(
        zstandard.BufferWithSegments(payloads, segments.tobytes()), threads=0)
    frames = [out[i].tobytes() for i in range(len(out))]
    return b"".join(frames), ends.tobytes(), np.cumsum([len(f) for f in frames], dtype=_I64).tobytes()


def select(payloads: bytes, lens: np.ndarray, keep: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The payloads at positions ``keep`` (ascending) out of ``payloads`` (lengths ``lens``)."""
    if len(keep) == len(lens):
        return payloads, lens
    ends = np.cumsum(lens, dtype=_I64)
    view = memoryview(payloads)
    starts = ends[keep] - lens[keep]
    return b"".join([view[s:e] for s, e in zip(starts.tolist(), ends[keep].tolist())]), lens[keep]


def rowids_of(first: int, n: int, rowids: bytes | None) -> np.ndarray:
    """A block's event ids (contiguous from ``first`` unless listed)."""
    return np.frombuffer(rowids, _I64) if rowids is not None else np.arange(first, first + n, dtype=np.int64)


def max_id(db) -> int:
    """The largest stored event id (0 when none): ids grow, never repeat."""
    return db.execute("SELECT coalesce(max(last_rowid), 0) FROM column_blocks").fetchone()[0]


def read(db, ids) -> dict[int, Stored]:
    """The stored events with these ids (missing ids are left out)."""
    want = np.unique(np.asarray(list(ids), np.int64))
    if not want.size:
        return {}
    found: dict[int, Stored] = {}
    for bid, pos, eids in _locate(db, want):
        found.update(_read_block(db, bid, pos, eids))
    return found


def _locate(db, want: np.ndarray):
    """(block id, positions in the block, event ids) for each block holding some of ``want``."""
    rows = db.execute("SELECT id, first_rowid, last_rowid, n, rowids FROM column_blocks"
                      " WHERE last_rowid >= ? AND first_rowid <= ? ORDER BY first_rowid",
                      (int(want[0]), int(want[-1]))).fetchall()
    for bid, first, last, n, rowids in rows:
        lo, hi = np.searchsorted(want, [first, last + 1])
        if lo == hi:
            continue
        mine = want[lo:hi]
        rid = rowids_of(first, n, rowids)
        pos = np.searchsorted(rid, mine)
        hit = (pos < n) & (rid[np.minimum(pos, n - 1)] == mine)
        if hit.any():
            yield bid, pos[hit], mine[hit]


def _read_block(db, bid: int, pos: np.ndarray, eids: np.ndarray) -> dict[int, Stored]:
    raw_end, frame_end, ts, keys, batch_id, batch_ids, n = db.execute(
        "SELECT raw_end, frame_end, ts, keys, batch_id, batch_ids, n FROM column_blocks WHERE id = ?",
        (bid,)).fetchone()
    ends = np.frombuffer(raw_end, _I64)
    starts = np.concatenate([[0], ends[:-1]])
    tsv = np.frombuffer(ts, _I64)[pos]
    kk = np.frombuffer(keys, _I64).reshape(-1, 2)[pos]
    batches = np.frombuffer(batch_ids, _I64)[pos] if batch_ids is not None else np.full(len(pos), batch_id)
    frames = _frames(db, bid, np.frombuffer(frame_end, _I64), np.unique(pos // FRAME).tolist(),
                     len(pos) > n * _WHOLE_SHARE)
    raws = []
    for p in pos.tolist():
        f = p // FRAME
        at = int(starts[f * FRAME])  # the frame's first byte in the uncompressed stream
        raws.append(frames[f][int(starts[p]) - at:int(ends[p]) - at])
    return {int(e): Stored(int(e), int(t), int(b), r, (int(k[0]), int(k[1])))
            for e, t, b, r, k in zip(eids.tolist(), tsv.tolist(), batches.tolist(), raws, kk.tolist())}


def _frames(db, bid: int, frame_end: np.ndarray, wanted: list[int], whole: bool) -> dict[int, bytes]:
    """The wanted frames of a block, decompressed."""
    z = zstandard.ZstdDecompressor()
    bounds = [(int(frame_end[f - 1]) if f else 0, int(frame_end[f])) for f in wanted]
    if whole:
        raw = db.execute("SELECT raw FROM column_blocks WHERE id = ?", (bid,)).fetchone()[0]
        return {f: z.decompress(raw[a:b]) for f, (a, b) in zip(wanted, bounds)}
    out = {}
    with db.blobopen("column_blocks", "raw", bid, readonly=True) as blob:
        for f, (a, b) in zip(wanted, bounds):
            blob.seek(a)
            out[f] = z.decompress(blob.read(b - a))
    return out


def unpack(raw: bytes, raw_end: bytes, frame_end: bytes) -> list[bytes]:
    """Every payload of a block, in order (a whole ``raw`` read at once)."""
    z = zstandard.ZstdDecompressor()
    cuts = [0] + np.frombuffer(frame_end, _I64).tolist()
    stream = b"".join(z.decompress(raw[a:b]) for a, b in zip(cuts[:-1], cuts[1:]))
    ends = np.frombuffer(raw_end, _I64).tolist()
    return [stream[a:b] for a, b in zip([0] + ends[:-1], ends)]


@attrs.frozen
class Block:
    """One block's ids, timestamps, codes and subscriptions (dictionary ids), for listings."""

    id: int
    rowid: np.ndarray
    ts: np.ndarray
    code: np.ndarray
    sub: np.ndarray


def blocks(db, *, after_id: int = 0, time_from_ms=None, time_to_ms=None, newest_first: bool = False):
    """The blocks that may hold events matching, in id order (or newest first)."""
    where, args = ["last_rowid > ?"], [after_id]
    if time_from_ms is not None:
        where.append("max_ts >= ?")
        args.append(time_from_ms)
    if time_to_ms is not None:
        where.append("min_ts <= ?")
        args.append(time_to_ms)
    q = (f"SELECT id, first_rowid, n, rowids, ts, code, sub FROM column_blocks WHERE {' AND '.join(where)}"
         f" ORDER BY first_rowid {'DESC' if newest_first else 'ASC'}")
    for bid, first, n, rowids, ts, code, sub in db.execute(q, args):
        yield Block(bid, rowids_of(first, n, rowids), np.frombuffer(ts, _I64), np.frombuffer(code, _I32),
                    np.frombuffer(sub, _I32))
