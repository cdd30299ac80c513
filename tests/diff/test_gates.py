"""`gpubill diff`'s gates: flags over gpubill-diff.toml, one reason per exceeded gate."""

from decimal import Decimal as D

import pytest

from gpubill.service.diff import Change, CustomerDelta, DiffReport
from gpubill.service.diff_gates import GATES_FILE, GateError, Gates, changed, gates_from, violations


def _report(*customers, changes=()):
    return DiffReport("main", "HEAD", ("2026-11",), customers, changes, (), ())


def _c(name, before, after, currency="USD"):
    return CustomerDelta(name, name, currency, "2026-11", before, after, ())


REPORT = _report(_c("acme", D("100.00"), D("120.00")), _c("beta", D("900.00"), D("880.00")))


def test_flags_win_over_the_file(tmp_path):
    (tmp_path / GATES_FILE).write_text('[gates]\nmax_increase = "5%"\nmax_customer_increase_amount = 10.5\n')
    gates = gates_from({"max_increase": "2", "max_decrease": None}, tmp_path)
    assert gates.limits == {"max_increase": D("2"), "max_customer_increase_amount": D("10.5")}


def test_no_file_and_no_flags_is_no_gate(tmp_path):
    assert not gates_from({}, tmp_path)


@pytest.mark.parametrize("text, message", [
    ('[gates]\nmax_raise = "5%"\n', "unknown gate 'max_raise'"),
    ('[gates]\nmax_increase = "five"\n', "max_increase: 'five' is not a percentage"),
    ('[gates]\nmax_decrease_amount = -3\n', "is not a amount (a number >= 0)"),
    ('gates = 3\n', "[gates] must be a table"),
    ('[gates\n', GATES_FILE),
])
def test_a_wrong_file_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / GATES_FILE).write_text(text)
    with pytest.raises(GateError) as e:
        gates_from({}, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_wrong_flag_names_the_flag(tmp_path):
    with pytest.raises(GateError, match=r"^--max-customer-increase: '5%%' is not a percentage"):
        gates_from({"max_customer_increase": "5%%"}, tmp_path)


def test_customer_gates_name_the_offending_customers():
    gates = Gates({"max_customer_increase": D("10"), "max_customer_decrease_amount": D("15")})
    assert violations(REPORT, gates) == [
        "customer acme (contract acme, 2026-11): increase 20.00 % (100.00 -> 120.00 USD) "
        "exceeds --max-customer-increase 10 %",
        "customer beta (contract beta, 2026-11): decrease 20.00 USD (900.00 -> 880.00 USD) "
        "exceeds --max-customer-decrease-amount 15",
    ]


def test_overall_gates_per_currency():
    report = _report(*REPORT.customers, _c("gamma", D("10.00"), D("30.00"), "EUR"))
    gates = Gates({"max_increase": D("50"), "max_increase_amount": D("5")})
    assert violations(report, gates) == [
        "total EUR: increase 200.00 % (10.00 -> 30.00 EUR) exceeds --max-increase 50 %",
        "total EUR: increase 20.00 EUR (10.00 -> 30.00 EUR) exceeds --max-increase-amount 5",
    ]


def test_within_the_gates_is_no_violation():
    gates = Gates({"max_customer_increase": D("20"), "max_decrease": D("0")})
    assert violations(REPORT, gates) == []


def test_a_new_contract_moves_the_total_but_no_customer_gate():
    report = _report(_c("new", None, D("500.00")), _c("zero", D("0"), D("5.00")))
    gates = Gates({"max_customer_increase": D("1"), "max_increase": D("1"), "max_increase_amount": D("100")})
    assert violations(report, gates) == [
        "total USD: increase 505.00 USD (0 -> 505.00 USD) exceeds --max-increase-amount 100"]


def test_changed_for_detailed_exitcode():
    assert not changed(_report(_c("acme", D("1"), D("1"))))
    assert changed(REPORT)
    assert changed(_report(changes=(Change("metric", "m", "changed", (), ()),)))


def test_a_gate_set_in_the_file_is_named_by_its_key_and_file(tmp_path):
    (tmp_path / GATES_FILE).write_text('[gates]\nmax_customer_increase = "10%"\nmax_increase = 1\n')
    gates = gates_from({"max_increase": "50"}, tmp_path)
    assert violations(REPORT, gates) == [
        "customer acme (contract acme, 2026-11): increase 20.00 % (100.00 -> 120.00 USD) "
        f"exceeds max_customer_increase in {tmp_path / GATES_FILE} 10 %"]
