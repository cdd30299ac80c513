"""`gpubill sample`: a pseudonymized sample of stored usage, for backtests in CI.

Reads a store's events (of a period, else all of them), keeps whole
subscriptions chosen at random (`customers`) and/or a share of each kept
subscription's events (`fraction`), both drawn from a seeded generator, and
writes them as a new store (or JSONL when the file name ends in `.jsonl`).
Subscription and transaction ids are replaced by keyed pseudonyms
(HMAC-SHA256 under the user's key: the same id gives the same pseudonym under
the same key, and nothing without the key links them back). Event codes,
timestamps and properties are kept, so the sample invoices like the original.

The contracts still name the real subscriptions: `Sample.mapping` gives real
-> pseudonym for the sampled ones (`mapping_json`, written by `--map-out`).
`gpubill diff --map FILE` reads it back (`read_mapping`), rewrites the
revisions' copies of the contracts to the pseudonyms (`pseudonymize_contracts`)
and leaves the contracts of unsampled subscriptions out of the report
(`without_contracts`).

A period selects events one day either side of it (UTC), so that every
timezone's days of the period are in the sample.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
from collections import defaultdict
from pathlib import Path

import attrs
import orjson

from gpubill.engine.calendar.period import parse_period_arg
from gpubill.service.events import Store

#: one day either side of a period: its days in every timezone
MARGIN = dt.timedelta(days=1)
PSEUDONYM_HEX = 24  # 96 bits of the HMAC: no collisions among real ids
_SUBSCRIPTION = re.compile(r'(\bsubscription\s+")([^"\\]*)(")')  # a contract's `subscription "ID"` clause
_CONTRACT = re.compile(r"\bcontract\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")


class SampleError(ValueError):
    """An input the sample refuses, in the user's words."""


@attrs.frozen
class Sample:
    events: int
    subscriptions: int
    mapping: dict[str, str]  # real subscription id -> pseudonym, of the sampled subscriptions


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """The pseudonym of an id of a kind ("subscription", "transaction", "customer")."""
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind[:3]}_{digest[:PSEUDONYM_HEX]}"


def sample(store: Store, out: str, key: bytes, *, period: str | None = None, customers: int | None = None,
           fraction: float = 1.0, seed: int = 0) -> Sample:
    """Write the sample to `out` (a new store, or JSONL for *.jsonl)."""
    if not key:
        raise SampleError("the pseudonymization key is empty")
    if not 0 < fraction <= 1:
        raise SampleError(f"--fraction {fraction} is not in (0, 1]")
    if customers is not None and customers < 1:
        raise SampleError(f"--customers {customers} is not a positive count")
    lo, hi = _window(period)
    by_sub = defaultdict(list)
    for e in store.events_as_dicts(time_from_ms=lo, time_to_ms=hi):
        by_sub[e["external_subscription_id"]].append(e)
    rng = random.Random(seed)
    subs = sorted(by_sub)
    if customers is not None and customers < len(subs):
        subs = sorted(rng.sample(subs, customers))
    mapping = {s: pseudonym(key, "subscription", s) for s in subs}
    events = [_event(e, key, mapping) for s in subs for e in by_sub[s] if fraction == 1 or rng.random() < fraction]
    _write(out, events)
    return Sample(len(events), len(subs), mapping)


def _window(period: str | None) -> tuple[int | None, int | None]:
    if period is None:
        return None, None
    try:
        kind, value = parse_period_arg(period)
    except ValueError as e:
        raise SampleError(str(e)) from None
    if kind == "month":
        y, m = value
        start, end = dt.date(y, m, 1), dt.date(y + m // 12, m % 12 + 1, 1)
    elif kind == "range":
        start, end = (_day(v) for v in value)
        end += dt.timedelta(days=1)  # the range is inclusive
    else:
        start = _day(value)
        end = start + dt.timedelta(days=1)
    return _ms(start - MARGIN), _ms(end + MARGIN) - 1


def _day(v: dt.date | dt.datetime) -> dt.date:
    return v.date() if isinstance(v, dt.datetime) else v


def _ms(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def _event(e: dict, key: bytes, mapping: dict[str, str]) -> dict:
    ts = dt.datetime.fromtimestamp(e["timestamp_ms"] / 1000, dt.timezone.utc)
    out = {
        "transaction_id": pseudonym(key, "transaction", e["transaction_id"]),
        "external_subscription_id": mapping[e["external_subscription_id"]],
        "code": e["code"],
        "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": e["properties"],
    }
    if e.get("precise_total_amount_cents") is not None:
        out["precise_total_amount_cents"] = e["precise_total_amount_cents"]
    return out


def _write(out: str, events: list[dict]) -> None:
    if out.endswith(".jsonl"):
        with open(out, "xb") as f:
            for e in events:
                f.write(orjson.dumps(e) + b"\n")
        return
    with Store(out, create=True) as target:
        if target.count_events():
            raise SampleError(f"{out} already holds events: sample into a new file")
        rejected = target.ingest(events, source="sample").counts()["rejected"]
        if rejected:
            raise SampleError(f"{rejected} sampled events were rejected by {out}")


def mapping_json(mapping: dict[str, str]) -> bytes:
    """The real -> pseudonym mapping file (`--map-out`)."""
    return orjson.dumps({"subscriptions": mapping}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def read_mapping(path: str) -> dict[str, str]:
    """The real -> pseudonym subscription ids of a `--map-out` file."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as e:
        raise SampleError(f"--map {path}: {e.strerror}") from None
    except orjson.JSONDecodeError:
        raise SampleError(f"--map {path}: not JSON (a `gpubill sample --map-out` file)") from None
    subs = doc.get("subscriptions") if isinstance(doc, dict) else None
    if not (isinstance(subs, dict) and all(isinstance(v, str) for v in subs.values())):
        raise SampleError(f'--map {path}: no "subscriptions" object of ids (a `gpubill sample --map-out` file)')
    return subs


def pseudonymize_contracts(directory: str, mapping: dict[str, str]) -> set[str]:
    """Rewrite every `subscription "REAL"` of the .bill files under ``directory`` (a temporary
    copy) to its pseudonym; the names of the contracts whose subscription the map lacks (the
    sample holds none of their events)."""
    left_out: set[str] = set()
    for path in Path(directory).rglob("*.bill"):
        text = path.read_text(encoding="utf-8")
        contracts = [(m.start(), m.group(1)) for m in _CONTRACT.finditer(text)]

        def swap(m: re.Match) -> str:
            if m.group(2) in mapping:
                return m.group(1) + mapping[m.group(2)] + m.group(3)
            owners = [name for start, name in contracts if start < m.start()]
            left_out.update(owners[-1:])  # the contract the clause is in
            return m.group(0)
        path.write_text(_SUBSCRIPTION.sub(swap, text), encoding="utf-8")
    return left_out


def without_contracts(report, left_out: set[str]):
    """The DiffReport without the invoices of the ``left_out`` contracts, saying so in "not invoiced"."""
    if not left_out:
        return report
    kept = tuple(c for c in report.customers if c.contract not in left_out)
    note = f"not in the sample (their subscriptions are not in --map): {', '.join(sorted(left_out))}"
    return attrs.evolve(report, customers=kept, unrated=(*report.unrated, note))
