"""`gpubill diff`'s gates: how far a change may move revenue before the build fails.

A gate is a limit on an increase or a decrease, in percent or as an amount, over each
currency's total (``max_increase``...) or over each customer's invoice of a period
(``max_customer_increase``...). Gates come from the flags and from ``gpubill-diff.toml``
at the contracts root (``[gates] max_increase = "5%"``); a flag wins over the file.
Customer gates apply to the invoices both revisions have (a contract added or removed only
moves the totals); a percentage gate says nothing where the before amount is 0.
``violations(report, gates)`` gives one line per exceeded gate and customer; the CLI exits
4 (EXIT_POLICY) when there is one.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path

import attrs

from gpubill.service.diff import percent_change

GATES_FILE = "gpubill-diff.toml"
# max_[customer_]increase|decrease[_amount]; the flag is --name with _ as -.
GATE_NAMES = tuple(
    f"max_{scope}{direction}{suffix}"
    for scope in ("", "customer_") for direction in ("increase", "decrease")
    for suffix in ("", "_amount"))


class GateError(ValueError):
    """A gate value or the gates file is wrong: one line for the user (exit 1)."""


@attrs.frozen
class Gates:
    limits: dict[str, Decimal] = attrs.field(factory=dict)   # gate name -> limit (percent or amount)
    sources: dict[str, str] = attrs.field(factory=dict)      # gate name -> where it was set, when not its flag

    def __bool__(self) -> bool:
        return bool(self.limits)

    def named(self, name: str) -> str:
        """The gate as its user set it: the flag, or the key in the gates file."""
        return self.sources.get(name) or _flag(name)


def gates_from(args: dict, repo_dir) -> Gates:
    """The gates set by ``args`` (argparse dests -> str or None) over those of the gates file."""
    path = Path(repo_dir) / GATES_FILE
    limits = _read_file(path)
    sources = {name: f"{name} in {path}" for name in limits}
    for name in GATE_NAMES:
        if args.get(name) is not None:
            limits[name] = _parse(name, args[name], _flag(name))
            sources.pop(name, None)
    return Gates(limits, sources)


def _read_file(path: Path) -> dict[str, Decimal]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise GateError(f"{path}: {e}") from None
    table = doc.get("gates", {})
    if not isinstance(table, dict):
        raise GateError(f"{path}: [gates] must be a table")
    unknown = sorted(set(table) - set(GATE_NAMES))
    if unknown:
        raise GateError(f"{path}: unknown gate {unknown[0]!r} (known: {', '.join(GATE_NAMES)})")
    return {name: _parse(name, value, f"{path}: {name}") for name, value in table.items()}


def _parse(name: str, value, where: str) -> Decimal:
    """'5%' or '5' for a percentage gate, '100.50' for an amount; never negative."""
    text = str(value).strip()
    if not _is_amount(name):
        text = text.removesuffix("%").strip()
    try:
        limit = Decimal(text)
    except InvalidOperation:
        raise GateError(f"{where}: {value!r} is not a {_unit(name)}") from None
    if not limit.is_finite() or limit < 0:
        raise GateError(f"{where}: {value!r} is not a {_unit(name)} (a number >= 0)")
    return limit


def _is_amount(name: str) -> bool:
    return name.endswith("_amount")


def _unit(name: str) -> str:
    return "amount" if _is_amount(name) else "percentage"


def violations(report, gates: Gates) -> list[str]:
    """One line per gate exceeded: by a currency's total, or by a customer's invoice."""
    reasons = []
    for currency, (before, after) in report.totals().items():
        reasons += _check(gates, "", f"total {currency}", before, after, currency)
    for c in report.customers:
        if c.before is not None and c.after is not None:
            who = f"customer {c.customer} (contract {c.contract}, {c.period})"
            reasons += _check(gates, "customer_", who, c.before, c.after, c.currency)
    return reasons


def _check(gates: Gates, scope: str, who: str, before: Decimal, after: Decimal, currency: str) -> list[str]:
    delta = after - before
    if not delta:
        return []
    direction = "increase" if delta > 0 else "decrease"
    pct = percent_change(before, after)
    moved = f"{before:f} -> {after:f} {currency}"
    out = []
    name = f"max_{scope}{direction}"
    limit = gates.limits.get(name)
    if limit is not None and pct is not None and abs(pct) > limit:
        out.append(f"{who}: {direction} {abs(pct):f} % ({moved}) exceeds {gates.named(name)} {limit:f} %")
    limit = gates.limits.get(name + "_amount")
    if limit is not None and abs(delta) > limit:
        out.append(f"{who}: {direction} {abs(delta):f} {currency} ({moved}) exceeds "
                   f"{gates.named(name + '_amount')} {limit:f}")
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def changed(report) -> bool:
    """Whether the report shows any change (--detailed-exitcode: 2 rather than 0)."""
    return bool(report.changes or report.finalized or report.notices
                or any(c.delta or c.lines for c in report.customers))
