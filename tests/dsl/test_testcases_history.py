"""A test's usage before its period is billed on the contract's earlier
invoices when its terms carry across invoices: no `usage-outside-period`
warning then, except before the contract starts."""

from __future__ import annotations

from gpubill.dsl.check import check_paths

CATALOG = """
entity e1 { name "E" currency USD timezone "UTC" }
metric m1 { event call count }
plan p1 { currency USD billing monthly charge m1 1.00 per call }
contract carried { customer "c" subscription "s1" entity e1 plan p1 starts 2026-08-01 discount 10 USD once }
contract plain { customer "d" subscription "s2" entity e1 plan p1 starts 2026-08-01 }
test "carried" {
  contract carried period 2026-10
  usage call at 2026-09-05T00:00:00Z
  usage call at 2026-07-05T00:00:00Z
  expect total = 0 USD
}
test "plain" { contract plain period 2026-10 usage call at 2026-09-05T00:00:00Z expect total = 0 USD }
"""


def test_usage_before_the_period_is_fine_only_where_earlier_invoices_bill_it(tmp_path):
    path = tmp_path / "t.bill"
    path.write_text(CATALOG)
    _, _, diags = check_paths([str(path)])
    warned = sorted((d.rule, d.span.line, d.message.split(" at ")[1].split(" ")[0]) for d in diags)
    # the carried contract's September usage is billed on its September invoice; July is before it starts;
    # the plain contract is invoiced for October alone
    assert warned == [("usage-outside-period", 10, "2026-07-05T00:00:00Z"),
                      ("usage-outside-period", 13, "2026-09-05T00:00:00Z")]
