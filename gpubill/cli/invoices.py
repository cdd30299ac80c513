"""`gpubill invoices`: stored invoices, from draft to finalized (or voided).

    gpubill invoices list     [--status S] [--customer ID] [--period LABEL] [--format table|json]
    gpubill invoices show     ID|NUMBER [--format table|json] [--revisions]
    gpubill invoices refresh  --contracts DIR --period P [--customer ID]
    gpubill invoices finalize --contracts DIR (ID|NUMBER | --due) [--yes]
    gpubill invoices void     ID|NUMBER --reason TEXT [--yes]
    gpubill invoices regenerate --contracts DIR ID|NUMBER [--yes]
    gpubill invoices export   ID|NUMBER|CREDIT-NOTE-NUMBER --format json|csv|pdf|ubl [-o FILE]

Every action runs as the store's user named by --as (or $GPUBILL_USER) under
its role: refresh needs reviewer, finalize, void and regenerate need approver. `refresh`
stores each billing period that ends in P as a draft (a new revision when its
content changed); `finalize --due` finalizes the drafts whose grace has
passed (for a clock job). `regenerate` invoices a voided invoice's period
again, finalized at once with a new number (Lago's regenerate). finalize,
void and regenerate on a terminal ask first, showing the number it takes and
the total; --yes answers for scripts.
"""

from __future__ import annotations

import argparse
import sys

from gpubill.cli import EXIT_INVALID, EXIT_USAGE, CliError
from gpubill.cli._common import actor_of, add_actor_argument, add_store_argument, open_store, write_table

HELP = "stored invoices: list, show, refresh drafts, finalize, void, export"
ACTIONS = ("list", "show", "refresh", "finalize", "void", "regenerate", "export")
EXPORT_FORMATS = ("json", "csv", "pdf", "ubl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("invoice", nargs="?", metavar="ID|NUMBER",
                   help="show, finalize, void, regenerate, export: the invoice")
    add_store_argument(p)
    add_actor_argument(p)
    p.add_argument("--contracts", action="append", metavar="DIR",
                   help="refresh, finalize, regenerate: the .bill files")
    p.add_argument("--period", help="refresh: a month, range or date (as `gpubill invoice`); list: a period label")
    p.add_argument("--customer", metavar="ID", help="refresh, list: only this customer")
    p.add_argument("--status", choices=("draft", "finalized", "voided"), help="list: only this status")
    p.add_argument("--due", action="store_true", help="finalize: every draft whose grace has passed")
    p.add_argument("--reason", help="void: why (required; kept in the audit log)")
    p.add_argument("--yes", action="store_true", help="finalize, void: do not ask for confirmation")
    p.add_argument("--revisions", action="store_true", help="show: list the draft's revisions too")
    p.add_argument("--format", default=None, help="list/show: table|json; export: json|csv|pdf|ubl")
    p.add_argument("-o", "--output", metavar="FILE", help="export: write here (default: stdout)")
    p.add_argument("--engine", choices=("fast", "reference"), default="fast")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.lifecycle import LifecycleError
    from gpubill.service.rating import ServiceError

    store = open_store(args)
    try:
        actor = actor_of(args, store)
        return _ACTIONS[args.action](args, store, actor)
    except LifecycleError as e:
        raise CliError(str(e), EXIT_INVALID) from None
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    finally:
        store.close()


def _need(args, *names: str) -> None:
    for n in names:
        if not getattr(args, n):
            raise CliError(f"invoices {args.action} needs {'an invoice id or number' if n == 'invoice' else '--' + n}",
                           EXIT_USAGE)


def _view_format(args) -> str:
    fmt = args.format or "table"
    if fmt not in ("table", "json"):
        raise CliError(f"invoices {args.action} prints table or json, not {fmt!r}", EXIT_USAGE)
    return fmt


def _list(args, store, actor) -> int:
    from gpubill.service import lifecycle

    rows = lifecycle.list_invoices(store, actor, status=args.status, customer=args.customer, period_label=args.period)
    if _view_format(args) == "json":
        _json([_summary(r) for r in rows])
    else:
        write_table(("number", "status", "type", "customer", "contract", "period", "total", "currency", "id"),
                    [(r.number or "(draft)", r.status, r.invoice_type, r.customer, r.contract, r.period_label,
                      r.doc.get("total_amount"), r.currency, r.id) for r in rows])
    return 0


def _summary(r) -> dict:
    return {"lago_id": r.id, "number": r.number, "status": r.status, "invoice_type": r.invoice_type,
            "customer": r.customer, "contract": r.contract, "external_subscription_id": r.subscription,
            "period": r.period_label, "currency": r.currency, "total_amount": r.doc.get("total_amount"),
            "revision": r.revision, "content_hash": r.content_hash, "replaces": r.replaces}


def _show(args, store, actor) -> int:
    from gpubill.service import lifecycle

    _need(args, "invoice")
    row = lifecycle.get_invoice(store, actor, args.invoice)
    notes = lifecycle.list_credit_notes(store, actor, invoice_id=row.id)
    revs = lifecycle.revisions(store, actor, row) if args.revisions else None
    if _view_format(args) == "json":
        out = {**row.doc, **_summary(row), "credit_notes": [n.doc for n in notes]}
        if revs is not None:
            out["revisions"] = revs
        _json(out)
        return 0
    from gpubill.cli.invoice_view import show_invoice

    show_invoice(row, notes, revs)
    return 0


def _refresh(args, store, actor) -> int:
    from gpubill.service import lifecycle

    _need(args, "contracts", "period")
    r = lifecycle.refresh(store, args.contracts, actor, args.period, args.customer, engine=args.engine)
    write_table(("invoice", "status", "customer", "contract", "period", "total", "currency", "change"),
                [(x.number or x.id, x.status, x.customer, x.contract, x.period_label, x.doc.get("total_amount"),
                  x.currency, _change(x, r.changed)) for x in r.invoices])
    for line in r.settled:
        print(f"late events: {line}")
    for name in r.open_periods:
        print(f"gpubill: {name} is still open: no draft yet (its usage so far: gpubill invoice)", file=sys.stderr)
    for reason in r.unrated:
        print(f"gpubill: error: {reason}", file=sys.stderr)
    return EXIT_INVALID if r.unrated else 0


def _change(row, changed) -> str:
    if row.id not in changed:
        return "unchanged"
    if row.status == "finalized":
        return "issued (progressive)"
    return "new" if row.revision == 1 else f"revision {row.revision}"


def _finalize(args, store, actor) -> int:
    from gpubill.service import lifecycle

    _need(args, "contracts")
    if args.due:
        rows = lifecycle.finalize_due(store, args.contracts, actor, engine=args.engine)
    else:
        _need(args, "invoice")
        row = lifecycle.get_invoice(store, actor, args.invoice)
        number = lifecycle.peek_number(store, args.contracts, row.id, actor) if row.status == "draft" else None
        _confirm(args, f"finalize {row.contract} {row.period_label} as {number}, total {row.doc.get('total_amount')} "
                       f"{row.currency} (as last refreshed; it is refreshed once more first)")
        rows = [lifecycle.finalize(store, args.contracts, actor, row.id, engine=args.engine)]
    for r in rows:
        print(f"finalized {r.number}  {r.customer}  {r.period_label}  {r.doc.get('total_amount')} {r.currency}  "
              f"sha256:{r.content_hash}")
    if args.due and not rows:
        print("no draft is past its grace period")
    return 0


def _void(args, store, actor) -> int:
    from gpubill.service import lifecycle

    _need(args, "invoice", "reason")
    row = lifecycle.get_invoice(store, actor, args.invoice)
    back = lifecycle.given_back_text(row)
    _confirm(args, f"void {row.number or row.id} ({row.doc.get('total_amount')} {row.currency}); it keeps its number"
             + (f"; it {back}" if back else ""))
    r = lifecycle.void(store, actor, row.id, args.reason)
    print(f"voided {r.number}: {args.reason}" + (f"\n{back}" if back else ""))
    return 0


def _regenerate(args, store, actor) -> int:
    from gpubill.service import lifecycle

    _need(args, "contracts", "invoice")
    row = lifecycle.get_invoice(store, actor, args.invoice)
    _confirm(args, f"invoice {row.contract} {row.period_label} again in place of voided {row.number}, finalized at "
                   "once with the next number")
    new = lifecycle.regenerate(store, args.contracts, actor, row.id, engine=args.engine)
    print(f"regenerated {row.number} as {new.number}: total {new.doc.get('total_amount')} {new.currency}")
    return 0


def _export(args, store, actor) -> int:
    from gpubill.service.exports import ExportError

    _need(args, "invoice")
    fmt = args.format or "json"
    if fmt not in EXPORT_FORMATS:
        raise CliError(f"invoices export writes {', '.join(EXPORT_FORMATS)}, not {fmt!r}", EXIT_USAGE)
    try:
        note = _credit_note_or_none(store, actor, args.invoice)
        data = _note_bytes(store, actor, note, fmt) if note is not None else _invoice_bytes(store, actor, args.invoice, fmt)
    except ExportError as e:
        raise CliError(str(e), EXIT_INVALID) from None
    if args.output:
        with open(args.output, "wb") as f:
            f.write(data)
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _invoice_bytes(store, actor, ref: str, fmt: str) -> bytes:
    from gpubill.service import exports, lifecycle

    row = lifecycle.get_invoice(store, actor, ref)
    notes = [n.doc for n in lifecycle.list_credit_notes(store, actor, invoice_id=row.id)] if fmt == "pdf" else ()
    return exports.invoice_file(exports.stored_invoice(row), fmt, notes)


def _note_bytes(store, actor, note, fmt: str) -> bytes:
    from gpubill.service import exports, lifecycle

    if fmt not in exports.NOTE_FORMATS:
        raise CliError("a credit note exports as json, pdf or ubl (its items are in the json)", EXIT_USAGE)
    return exports.credit_note_file(note.doc, lifecycle.get_invoice(store, actor, note.invoice_id).doc, fmt)


def _credit_note_or_none(store, actor, ref: str):
    from gpubill.service import lifecycle
    from gpubill.service.lifecycle import LifecycleError

    try:
        return lifecycle.get_credit_note(store, actor, ref)
    except LifecycleError:
        return None


def _confirm(args, what: str) -> None:
    """Ask on a terminal; --yes (or a non-interactive stdin without --yes: refused) for scripts."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"not confirmed: {what}; pass --yes to confirm without a terminal", EXIT_USAGE)
    answer = input(f"{what}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled: nothing changed", EXIT_INVALID)


def _json(obj) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


_ACTIONS = {"list": _list, "show": _show, "refresh": _refresh, "finalize": _finalize, "void": _void,
            "regenerate": _regenerate, "export": _export}
