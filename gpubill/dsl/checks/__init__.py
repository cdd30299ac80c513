"""The semantic checks, in the order they run. See gpubill.dsl.check."""

from gpubill.dsl.checks.references import check_references

CHECKS = (check_references,)
