"""Streaming readers for event files: JSONL, CSV and Lago batch JSON.

Each reader yields chunks ``(objs, raws, where)``: parsed events, their raw
JSON texts (bytes) and where each came from (line numbers), so memory stays
bounded however long the input is. A record that is not valid JSON (or not
UTF-8) becomes an ``Unparsable`` that ingestion rejects into quarantine.

CSV: a header row; the columns transaction_id, external_subscription_id,
code, timestamp and precise_total_amount_cents are the canonical fields, an
optional ``properties`` column holds a JSON object, and every other column is
a property (string value; an empty cell means the property is absent). Each
row's raw payload is the event object built from it.

A Lago batch document (``{"events": [...]}``) or a JSON array is read whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson

from .validate import Unparsable

MAX_LINE = 1 << 20
_CANON = ("transaction_id", "external_subscription_id", "code", "timestamp", "precise_total_amount_cents")


class FormatError(ValueError):
    """The input as a whole cannot be read in the given format."""


def sniff(head: bytes, name: str | None) -> str:
    if name:
        low = name.lower()
        for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".json", "lago")):
            if low.endswith(ext):
                return fmt
    s = head.lstrip()
    if s.startswith(b"["):
        return "lago"
    if s.startswith(b"{"):
        first = s.split(b"\n", 1)[0]
        try:
            obj = orjson.loads(first)
            return "lago" if isinstance(obj, dict) and isinstance(obj.get("events"), list) else "jsonl"
        except orjson.JSONDecodeError:
            return "lago" if b'"events"' in s[:200] else "jsonl"
    return "csv"


def read_events(stream: io.BufferedIOBase, fmt: str, chunk: int) -> Iterator[tuple[list, list, list]]:
    if fmt == "jsonl":
        return _jsonl(stream, chunk)
    if fmt == "csv":
        return _csv(stream, chunk)
    if fmt == "lago":
        return _lago(stream, chunk)
    raise FormatError(f"unknown input format {fmt!r}")


def _parse(line: bytes):
    if len(line) > MAX_LINE:
        return Unparsable(f"record longer than {MAX_LINE} bytes")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return Unparsable(f"malformed JSON: {e}")


def _jsonl(stream, chunk):
    objs, raws, where = [], [], []
    for no, line in enumerate(stream, 1):
        line = line.strip()
        if not line:
            continue
        obj = _parse(line)
        objs.append(obj)
        raws.append(line if type(obj) is dict else line[:MAX_LINE])
        where.append(no)
        if len(objs) >= chunk:
            yield objs, raws, where
            objs, raws, where = [], [], []
    if objs:
        yield objs, raws, where


def _csv(stream, chunk):
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        rows = csv.reader(text)
        header = next(rows, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        objs, raws, where = [], [], []
        for no, row in enumerate(rows, 2):
            if not row:
                continue
            obj = _csv_event(header, row)
            objs.append(obj)
            raws.append(orjson.dumps(obj) if type(obj) is dict else orjson.dumps(row))
            where.append(no)
            if len(objs) >= chunk:
                yield objs, raws, where
                objs, raws, where = [], [], []
        if objs:
            yield objs, raws, where
    except UnicodeDecodeError as e:
        raise FormatError(f"CSV input is not UTF-8 ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise FormatError(f"malformed CSV: {e}") from None


def _csv_event(header, row):
    if len(row) != len(header):
        return Unparsable(f"row has {len(row)} cells, the header has {len(header)}")
    ev: dict = {}
    props: dict = {}
    for k, v in zip(header, row):
        if k in _CANON:
            if v != "":
                ev[k] = v
        elif k == "properties":
            if v.strip():
                p = _parse(v.encode())
                if type(p) is not dict:
                    return Unparsable("the properties cell is not a JSON object")
                props.update(p)
        elif v != "":
            props[k] = v
    ev["properties"] = props
    return ev


def _lago(stream, chunk):
    data = stream.read()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise FormatError(f"malformed JSON document: {e}") from None
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        events = doc["events"]
    elif isinstance(doc, dict) and isinstance(doc.get("event"), dict):
        events = [doc["event"]]
    elif isinstance(doc, list):
        events = doc
    else:
        raise FormatError('expected a Lago batch {"events": [...]}, {"event": {...}} or a JSON array')
    for k in range(0, len(events), chunk):
        part = events[k:k + chunk]
        yield part, [_raw(e) for e in part], list(range(k, k + len(part)))


def _raw(e) -> bytes:
    try:
        return orjson.dumps(e)
    except TypeError:
        return b"null"
