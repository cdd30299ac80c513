"""One meaning per name: the billing period and the event columns are each
defined once in the package (issue 8); a second class of the same name is a
second meaning."""

import re
from pathlib import Path

import gpubill

PACKAGE = Path(gpubill.__file__).parent


def _defined(name: str) -> list[str]:
    pattern = re.compile(rf"^class {name}\b", re.M)
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text()))


def test_period_is_defined_once():
    assert _defined("Period") == ["engine/calendar/period.py"]


def test_event_columns_are_defined_once():
    assert _defined("EventColumns") == ["store/columns.py"]


def test_the_check_finds_a_class():
    assert _defined("Coverage") == ["engine/calendar/coverage.py"]
