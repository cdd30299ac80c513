"""`gpubill credit-note`: credit a finalized invoice (needs the approver role).

    gpubill credit-note INVOICE (--amount A | --percent P) --reason R [--description TEXT]
                        [--kind credit|refund|offset] [--item N=AMOUNT ...] [--yes] [--format table|json]
    gpubill credit-note list [--invoice INVOICE] [--customer ID] [--format table|json]
    gpubill credit-note void NOTE --reason TEXT [--yes]

The amount includes tax and is spread over the invoice's fees in proportion
to what each can still be credited, or, with ``--item N=AMOUNT`` (line N as
`gpubill invoices show` numbers it, AMOUNT before tax), is what the items
add up to with their taxes (``--amount`` may be left out; given, it must be
that within a cent); it is at most what earlier credit notes left of the
invoice, and an item at most what its line has left. A `credit`
note's balance pays the contract's next invoices (after tax, before prepaid
credits); `refund` and `offset` only document money returned or not owed.
Numbered `<invoice number>-CN001`, `-CN002`, ... `void` voids the credit
left on a `credit` note (Lago's credit-note void): invoices finalized from
then on get none of it; what earlier ones consumed stays.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from gpubill.cli import EXIT_INVALID, EXIT_USAGE, CliError
from gpubill.cli._common import actor_of, add_actor_argument, add_store_argument, open_store, write_table

HELP = "credit a finalized invoice (credit, refund or offset), list credit notes, or void a note's credit left"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.service.lifecycle import CREDIT_NOTE_REASONS

    p.add_argument("invoice", metavar="INVOICE|list|void",
                   help="the invoice's number or id; `list` lists credit notes; `void NOTE` voids a note's credit left")
    p.add_argument("note", nargs="?", metavar="NOTE", help="void: the credit note's number or id")
    add_store_argument(p)
    add_actor_argument(p)
    p.add_argument("--amount", help="the credit, tax included, in the invoice's currency")
    p.add_argument("--percent", help="the credit as a percentage of the invoice's total")
    p.add_argument("--item", action="append", metavar="N=AMOUNT",
                   help="credit line N (as `invoices show` numbers it) by AMOUNT before tax; repeatable")
    p.add_argument("--kind", choices=("credit", "refund", "offset"), default="credit")
    p.add_argument("--reason", help=f"one of {', '.join(CREDIT_NOTE_REASONS)}; void: why (free text, audited)")
    p.add_argument("--description", default="")
    p.add_argument("--invoice", dest="of_invoice", metavar="INVOICE", help="list: only this invoice's notes")
    p.add_argument("--customer", metavar="ID", help="list: only this customer's notes")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    from gpubill.service import lifecycle
    from gpubill.service.lifecycle import LifecycleError

    store = open_store(args)
    try:
        actor = actor_of(args, store)
        if args.invoice == "list":
            return _list(args, store, actor)
        if args.invoice == "void":
            return _void(args, store, actor)
        if args.reason not in lifecycle.CREDIT_NOTE_REASONS:
            raise CliError(f"a credit note needs --reason, one of {', '.join(lifecycle.CREDIT_NOTE_REASONS)}",
                           EXIT_USAGE)
        amount, percent = _decimal(args.amount, "--amount"), _decimal(args.percent, "--percent")
        items = [_item(v) for v in args.item] if args.item else None
        row = lifecycle.get_invoice(store, actor, args.invoice)
        if not args.yes:
            from gpubill.cli.invoices import _confirm
            what = (f"{args.amount} {row.currency}" if amount is not None else f"{args.percent}%" if percent is not None
                    else f"line(s) {', '.join(args.item)} before tax, plus their taxes,")
            _confirm(args, f"issue a {args.kind} note of {what} on {row.number} (total {row.doc.get('total_amount')})")
        cn = lifecycle.credit_note(store, actor, row.id, kind=args.kind, amount=amount, percent=percent,
                                   items=items, reason=args.reason, description=args.description)
    except LifecycleError as e:
        raise CliError(str(e), EXIT_INVALID) from None
    finally:
        store.close()
    if args.format == "json":
        from gpubill.cli.invoices import _json
        _json(cn.doc)
    else:
        print(f"credit note {cn.number}: {cn.kind} {cn.total} {cn.currency} on {row.number} "
              f"({len(cn.doc['items'])} items)")
    return 0


def _void(args, store, actor) -> int:
    from gpubill.service import lifecycle

    if not args.note or not (args.reason or "").strip():
        raise CliError("usage: gpubill credit-note void NOTE --reason TEXT", EXIT_USAGE)
    cn = lifecycle.get_credit_note(store, actor, args.note)
    if not args.yes:
        from gpubill.cli.invoices import _confirm
        _confirm(args, f"void the {lifecycle.credit_left(store, cn)} {cn.currency} left on credit note {cn.number}")
    cn, left = lifecycle.void_credit_note(store, actor, cn.id, args.reason)
    print(f"voided {left} {cn.currency} of credit note {cn.number}: {args.reason}")
    return 0


def _item(v: str) -> tuple[int, Decimal]:
    """``N=AMOUNT`` as (the fee's index, the amount)."""
    from gpubill.service.lifecycle import parse_item

    try:
        return parse_item(v)
    except ValueError as e:
        raise CliError(f"--item: {e}", EXIT_USAGE) from None


def _decimal(v, flag: str) -> Decimal | None:
    if v is None:
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise CliError(f"{flag} must be a decimal number, got {v!r}", EXIT_USAGE) from None
    if not d.is_finite():
        raise CliError(f"{flag} must be a finite number, got {v!r}", EXIT_USAGE)
    return d


def _list(args, store, actor) -> int:
    from gpubill.service import lifecycle

    invoice_id = lifecycle.get_invoice(store, actor, args.of_invoice).id if args.of_invoice else None
    notes = lifecycle.list_credit_notes(store, actor, invoice_id=invoice_id, customer=args.customer)
    if args.format == "json":
        from gpubill.cli.invoices import _json
        _json([{**n.doc, "credit_left": str(lifecycle.credit_left(store, n))} for n in notes])
    else:
        write_table(("number", "kind", "total", "left", "currency", "customer", "reason", "description"),
                    [(n.number, n.kind, n.total, lifecycle.credit_left(store, n), n.currency, n.customer,
                      n.doc.get("reason"), n.doc.get("description")) for n in notes])
    return 0
