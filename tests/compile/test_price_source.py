"""Each compiled price keeps the source of the clause that set it last, so
that `gpubill rate --explain` looks the clause up instead of re-deciding
which override won (docs/language.md, Overrides)."""

from __future__ import annotations

from types import SimpleNamespace

from gpubill.dsl.check import check_sources
from gpubill.engine.spec.compile import compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription
from gpubill.engine.reference.trace import price_source

SRC = """\
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  dimension gpu_type in "A100", "H100", "H200"
  dimension region in "us", "eu"
}
metric tok {
  event inference
  sum output_tokens
}
plan p {
  currency USD
  billing monthly calendar
  charge gpu_hours per hour by gpu_type {
    "A100" 1.89
    "H100" 3.49
    "H200" 4.25
  } {
    where region = "eu" 5.00 per hour
    where region = "us" per hour by gpu_type {
      "H200" 4.00
    }
  }
  charge tok 0.01 per token {
    during 2026-10-05 .. 2026-10-10 0.02 per token
  }
}
contract a {
  customer "a" subscription "sa" entity us plan p starts 2026-01-01
  override gpu_hours where gpu_type = "H100" 3.00 per hour
  override gpu_hours where region = "us" per hour by gpu_type {
    "A100" 1.50
  }
  override gpu_hours per hour by gpu_type {
    "H200" 3.90
  }
}
contract c {
  customer "c" subscription "sc" entity us plan p starts 2026-01-01
  override gpu_hours where gpu_type = "H100" 2.80 per hour
  override gpu_hours 1.00 per hour
  override gpu_hours where gpu_type = "H200" 3.70 per hour
}
"""
LINES = SRC.splitlines()


def at(text: str) -> str:
    """The source of the (only) line holding `text`, at its first non-blank column."""
    (n,) = [i for i, line in enumerate(LINES, start=1) if text in line]
    return f"t.bill:{n}:{len(LINES[n - 1]) - len(LINES[n - 1].lstrip()) + 1}"


def charges(contract: str) -> dict:
    catalog, diags = check_sources({"t.bill": SRC})
    assert not [d for d in diags if d.is_error], diags
    spec = compile_subscription(catalog, resolve_subscription(catalog, catalog.contracts[contract], "2026-10"))
    return {c.id: c for c in spec.charges}


def source(charge, window=None, **values) -> str | None:
    line = SimpleNamespace(filter={k: (v,) for k, v in values.items()} or None, window=window)
    return price_source(charge, line)


def test_the_last_clause_to_set_a_price_is_its_source():
    gpu = charges("a")["gpu_hours"]
    assert source(gpu) == at("charge gpu_hours per hour by gpu_type")  # the default bucket of a table
    assert source(gpu, gpu_type="A100") == at('"A100" 1.89')  # the plan's row
    assert source(gpu, gpu_type="H100") == at('where gpu_type = "H100" 3.00')  # the contract's override
    assert source(gpu, gpu_type="H200") == at('"H200" 3.90')  # a row of an override table
    assert source(gpu, region="eu") == at('where region = "eu" 5.00')  # the plan's filter
    assert source(gpu, region="us", gpu_type="H200") == at('"H200" 4.00')  # a row of the plan filter's table
    assert source(gpu, region="us", gpu_type="A100") == at('"A100" 1.50')  # a row of an override's table


def test_a_window_is_its_own_source():
    tok = charges("a")["tok"]
    assert source(tok) == at("charge tok 0.01 per token")
    assert source(tok, window=0) == at("during 2026-10-05")


def test_an_unconditional_override_replaces_every_source_before_it():
    gpu = charges("c")["gpu_hours"]
    assert source(gpu) == at("override gpu_hours 1.00 per hour")
    assert [f.values for f in gpu.filters] == [{"gpu_type": frozenset({"H200"})}]
    assert source(gpu, gpu_type="H200") == at('where gpu_type = "H200" 3.70')
