"""The legal identity clauses: entity `address` / `country` / `vat id`, contract `bill to` / `vat id`."""

from __future__ import annotations

import pytest

from gpubill.dsl.check import check_sources


def _diags(text: str):
    return [d for d in check_sources({"x.bill": text})[1] if d.rule in ("unknown-country", "vat-id-country")]


@pytest.mark.parametrize("code, hint", [
    ("de", 'write the code in capitals: "DE"'),
    ("UK", 'the United Kingdom\'s code is "GB"'),
    ("Germany", "use a two-letter code such as US, DE"),
])
def test_a_bad_country_names_the_code_and_hints_the_fix(code, hint):
    (d,) = _diags(f'entity e {{\n  currency EUR\n  country "{code}"\n}}\n')
    assert d.rule == "unknown-country" and d.span.line == 3 and d.span.col == 11
    assert d.hints[0].startswith(hint)


def test_a_contract_bill_to_country_is_checked():
    (d,) = _diags('contract c {\n  bill to "1 Main St", country "XX"\n}\n')
    assert d.rule == "unknown-country" and d.span.line == 2


def test_a_vat_id_needs_a_country_prefix_and_the_hint_uses_the_entity_country():
    (d,) = _diags('entity e {\n  currency EUR\n  country "AT"\n  vat id "U12345678"\n}\n')
    assert d.rule == "vat-id-country" and '"ATU12345678"' in d.hints[0]


@pytest.mark.parametrize("vat", ["EL094259216", "DE123456789", "XI123456789"])
def test_greece_el_and_country_prefixes_are_accepted(vat):
    assert _diags(f'entity e {{\n  currency EUR\n  vat id "{vat}"\n}}\n') == []
