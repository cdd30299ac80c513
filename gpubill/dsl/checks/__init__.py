"""The semantic checks, in the order they run. See gpubill.dsl.check.

Each check is `check_x(catalog) -> Iterable[Diagnostic]`. Names come first
(a later check skips what refers to nothing), then missing clauses and bad
literals, then the rules that relate one part to another. Every rule id is
documented in docs/diagnostics.md.
"""

from gpubill.dsl.checks.applicable import check_applicable
from gpubill.dsl.checks.constraints import check_constraints
from gpubill.dsl.checks.currencies import check_currencies
from gpubill.dsl.checks.filters import check_filters
from gpubill.dsl.checks.literals import check_literals
from gpubill.dsl.checks.notice import check_notice
from gpubill.dsl.checks.periods import check_periods
from gpubill.dsl.checks.quantities import check_quantities
from gpubill.dsl.checks.references import check_references
from gpubill.dsl.checks.required import check_required
from gpubill.dsl.checks.terms import check_terms
from gpubill.dsl.checks.testcases import check_testcases
from gpubill.dsl.checks.tiers import check_tiers

CHECKS = (
    check_references,
    check_required,
    check_literals,
    check_filters,
    check_quantities,
    check_currencies,
    check_tiers,
    check_constraints,
    check_periods,
    check_notice,
    check_terms,
    check_applicable,
    check_testcases,
)
