"""A contracts directory with one budgeted contract, and events to ingest in steps.

The contract bills H100-SXM GPU-hours at 3.49 USD (examples/plans/on_demand.bill,
version 2); one event of 8 GPUs for 10 h costs 279.20 USD, for 12 h 335.04 USD.
"""

from __future__ import annotations

import shutil
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
OCT_1 = 1790812800  # 2026-10-01T00:00Z
DAY = 86400
SUB = "sub_budget"
CONTRACT = """contract budgeted {
  customer "budget-co" name "Budget Co"
  subscription "sub_budget"
  entity gpucloud_us
  plan on_demand
  starts 2026-01-01
  budget 1_000 USD monthly, alert at 50%, 80%, 100%
  job limit 300 USD
}
"""


def job(i: int, hours: int, gpus: int = 8, sub: str = SUB) -> dict:
    """A gpu_job on 2026-10-(i+1) at 13:00Z (in October in New York too)."""
    return {"transaction_id": f"job-{i}", "external_subscription_id": sub, "code": "gpu_job",
            "timestamp": OCT_1 + i * DAY + 13 * 3600,
            "properties": {"gpu_type": "H100-SXM", "gpu_count": str(gpus), "duration_seconds": str(hours * 3600),
                           "end_reason": "completed", "avg_utilization": "0.9"}}


def write_contracts(d: Path) -> Path:
    for part in ("entities", "metrics", "plans"):
        shutil.copytree(ROOT / "examples" / part, d / part)
    (d / "budgeted.bill").write_text(CONTRACT)
    return d
