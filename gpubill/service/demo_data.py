"""A realistic month of GPU job and inference events, generated from a catalog.

The generator reads what each active contract's plan charges for (event
codes, the properties their metrics use, dimension values, group keys) and
produces events a metering agent would send: per-second inference calls and
long training jobs, fractional and MIG GPUs, token counts, spot preemptions,
user and infrastructure failures. It then mixes in what real pipelines do:
exact re-sends (duplicates), a conflicting re-send, malformed events, and
late events that arrive after the first rating. Seeded: the same arguments
give the same events.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import attrs

from gpubill.dsl import ast, units
from gpubill.dsl.quantities import expr_props
from gpubill.dsl.resolve import Catalog
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding

#: generated precise amounts are kept to 1/10 000 of a cent (not a bill amount: demo input)
DEMO_CENTS = MoneyRounding("ROUND_HALF_EVEN", Decimal("0.0001"))

GPU_TYPES = ("A100-40GB", "A100-80GB", "H100-SXM", "H200")
REGIONS = ("us-east", "us-west", "eu-west")
MODELS = ("llama-3-70b", "mixtral-8x7b", "qwen-2-72b", "sdxl-turbo")
END_REASONS = (("completed", 90), ("preempted", 4), ("failed_user", 3), ("failed_infrastructure", 3))


@attrs.frozen
class DemoEvents:
    main: list  # ingested first
    late: list  # in-period events that arrive after the first rating
    duplicates: int
    conflicts: int
    malformed: int


@attrs.frozen
class _Need:
    numeric: frozenset
    strings: dict  # name -> tuple of values (empty: free text)
    unique_field: str | None
    dynamic: bool
    counted_only: bool  # every metric on the code just counts events (a per-job fee): such events are rare


def _needs(catalog: Catalog, plan: ast.Plan) -> dict[str, _Need]:
    """Per event code: the properties this plan's charges read."""
    acc: dict[str, dict] = {}
    for ch in plan.charges:
        m = catalog.metrics.get(ch.metric.name)
        if m is None or m.event is None or m.aggregation is None:
            continue
        a = acc.setdefault(m.event.name, {"numeric": set(), "strings": {}, "unique": None, "dynamic": False,
                                           "counted_only": True})
        agg = m.aggregation
        a["counted_only"] &= agg.kind == "count"
        if agg.expr is not None:
            a["numeric"] |= {p.name for p in expr_props(agg.expr)}
        for pe in m.per_event:
            a["numeric"].add(pe.prop.name)
        if agg.kind == "unique_count" and agg.field is not None:
            a["unique"] = agg.field.name
        for d in m.dimensions:
            vals = tuple(v.value for v in d.values) if d.values else ()
            a["strings"][d.name.name] = vals or a["strings"].get(d.name.name, ())
        for g in ch.group_by:
            a["strings"].setdefault(g.name, ())
        if isinstance(ch.price, ast.Dynamic):
            a["dynamic"] = True
        a["numeric"].add("avg_utilization")
        a["strings"].setdefault("end_reason", ())
        a["strings"].setdefault("job_id", ())
    return {
        code: _Need(frozenset(a["numeric"]), a["strings"], a["unique"], a["dynamic"], a["counted_only"])
        for code, a in acc.items()
    }


def _string_value(rng: random.Random, name: str, values: tuple, i: int) -> str:
    if values:
        return rng.choice(values)
    if name == "end_reason":
        r = rng.randrange(100)
        for reason, weight in END_REASONS:
            if r < weight:
                return reason
            r -= weight
        return "completed"
    if name == "job_id":
        return f"job-{i:07d}"
    if name in units.CANONICAL_VALUES:
        return rng.choice(units.CANONICAL_VALUES[name])
    return {"gpu_type": lambda: rng.choice(GPU_TYPES), "region": lambda: rng.choice(REGIONS),
            "model_name": lambda: rng.choice(MODELS)}.get(name, lambda: f"{name}-{rng.randrange(4)}")()


def _numeric_value(rng: random.Random, name: str, training: bool) -> str:
    if name == "gpu_count":
        return rng.choice(("1", "1", "2", "4", "8", "8", "0.5", "0.25", "0.143"))
    if name == "duration_seconds":
        if training:
            return str(rng.randrange(600, 86_400))
        return f"{rng.randrange(0, 600)}.{rng.randrange(10)}" if rng.random() < 0.3 else str(rng.randrange(1, 900))
    if name == "avg_utilization":
        return f"0.{rng.randrange(5, 100):02d}"
    if name == "peak_vram_gb":
        return str(rng.choice((10, 20, 40, 80, 141)))
    if name in ("input_tokens", "output_tokens", "cached_tokens"):
        base = {"input_tokens": 4000, "output_tokens": 800, "cached_tokens": 1000}[name]
        return str(rng.randrange(0, base * 2))
    if name == "total_flops":
        return str(rng.randrange(1, 5000) * 10**12)
    return str(rng.randrange(1, 100))


def generate(catalog: Catalog, contracts: list[ast.Contract], plans: dict[str, ast.Plan],
             period_from_ms: int, period_to_ms: int, total_events: int, seed: int = 2026) -> DemoEvents:
    """Events for the given contracts (plans by contract name), spread over the period."""
    rng = random.Random(seed)
    weights = [rng.choice((1, 2, 3, 5, 8)) for _ in contracts]
    scale = total_events / max(1, sum(weights))
    main: list[dict] = []
    late: list[dict] = []
    span = period_to_ms - period_from_ms
    seq = 0
    for c, w in zip(contracts, weights):
        needs = _needs(catalog, plans[c.name.name])
        if not needs or c.subscription is None:
            continue
        sub = c.subscription.value
        codes = sorted(needs)
        code_weights = [0.02 if needs[c].counted_only and len(codes) > 1 else 1.0 for c in codes]
        for i in range(max(1, int(w * scale))):
            code = rng.choices(codes, code_weights)[0]
            need = needs[code]
            training = rng.random() < 0.2
            props: dict[str, str] = {}
            for name in sorted(need.numeric):
                props[name] = _numeric_value(rng, name, training)
            for name, values in sorted(need.strings.items()):
                props[name] = _string_value(rng, name, values, seq)
            if need.unique_field:
                props[need.unique_field] = f"inst-{rng.randrange(40)}"
                props["operation_type"] = "remove" if rng.random() < 0.2 else "add"
            ts = period_from_ms + rng.randrange(span)
            ev = {
                "transaction_id": f"{sub}-{seq:08d}",
                "external_subscription_id": sub,
                "code": code,
                "timestamp": _iso(ts),
                "properties": props,
            }
            if need.dynamic:
                # what a spot market would have charged for this job: 0.90 to 2.40 per GPU-hour
                gpus = Decimal(props.get("gpu_count", "1"))
                hours = Decimal(props.get("duration_seconds", "3600")) / 3600
                cents = round_amount(gpus * hours * rng.randrange(90, 240), DEMO_CENTS)
                ev["precise_total_amount_cents"] = format(cents, "f")
            seq += 1
            (late if rng.random() < 0.005 else main).append(ev)
    rng.shuffle(main)
    dup = [dict(e) for e in rng.sample(main, k=min(len(main), max(1, len(main) // 100)))]
    conflicts = []
    for e in rng.sample(main, k=min(len(main), 3)):
        c = {**e, "properties": {**e["properties"], "tampered": "yes"}}
        conflicts.append(c)
    malformed = _malformed(rng, main[:20], period_to_ms)
    stream = main + dup + conflicts + malformed
    rng.shuffle(stream)
    return DemoEvents(stream, late, len(dup), len(conflicts), len(malformed))


def _malformed(rng: random.Random, sample: list[dict], period_to_ms: int) -> list[dict]:
    if not sample:
        return []
    base = sample[0]
    bad = []
    for n, mutate in enumerate(
        (
            lambda e: e["properties"].__setitem__("duration_seconds", "-30"),
            lambda e: e.pop("code"),
            lambda e: e.__setitem__("timestamp", "2026-10-05 10:00:00"),
            lambda e: e.__setitem__("timestamp", _iso(period_to_ms + 90 * 86_400_000)),
            lambda e: e["properties"].__setitem__("gpu_count", "NaN"),
            lambda e: e.__setitem__("properties", "not an object"),
        )
    ):
        e = {**base, "properties": dict(base["properties"]), "transaction_id": f"malformed-{n}"}
        mutate(e)
        bad.append(e)
    return bad


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
