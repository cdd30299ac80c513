"""Contracts and invoices: rated lines + contract terms -> invoices.

Periods, commitments, reserved capacity, credits, discounts, taxes,
progressive billing, budgets and policies. Pure; imports `dsl` and `engine`.
"""
