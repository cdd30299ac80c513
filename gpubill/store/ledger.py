"""Invoices and credit notes as stored: drafts as immutable revisions, numbers, freezing, voids.

The store keeps documents (the JSON of docs/invoice-json.md), not pricing:
the service computes a document and hands it here. Every function that
changes something runs inside ``Store.transaction()`` (``BEGIN IMMEDIATE``)
and appends its audit entry in the same transaction.

- A draft is one ``invoices`` row plus one ``invoice_revisions`` row per
  content it has had: a refresh whose document differs adds a revision (the
  revisions are never updated or deleted: triggers refuse it); one that does
  not differ adds nothing.
- Finalizing takes the entity's next number and freezes the document with
  its SHA-256 (``content_hash``); a trigger refuses any later change to a
  finalized row's content or number. Voiding keeps the number.
- Numbers follow Lago (invoicing.md §1.7): ``per_customer`` →
  ``P-<customer seq>-<invoice seq>``; ``per_entity`` → ``P-<YYYYMM>-<entity
  seq>`` where the sequence never restarts. The next value is max + 1 read
  under the write lock, and UNIQUE constraints back it: no number is reused
  or skipped, also with two processes finalizing at once.
- A credit note is numbered ``<invoice number>-CN<seq:03d>``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from decimal import Decimal

import attrs
import orjson

from . import audit
from .roles import Actor

NUMBERING = ("per_customer", "per_entity")
CREDIT_NOTE_KINDS = ("credit", "refund", "offset")
_COLUMNS = ("id", "entity", "customer", "contract", "subscription", "invoice_type", "period_from_ms", "period_to_ms",
            "period_label", "currency", "status", "created_ms", "due_ms", "revision", "number", "issuing_date",
            "finalized_ms", "content_hash", "audit_hash", "watermark", "voided_ms", "void_reason", "replaces", "body")


def content_hash(doc: dict) -> str:
    """SHA-256 (hex) of a document's canonical JSON: what a finalized invoice is frozen with."""
    return hashlib.sha256(audit.canonical(doc)).hexdigest()


@attrs.frozen
class InvoiceKey:
    """What identifies an invoice: its id (stable per contract, subscription, period and type) and what it bills."""

    id: str
    entity: str
    customer: str
    contract: str
    subscription: str
    invoice_type: str
    period_from_ms: int
    period_to_ms: int
    period_label: str
    currency: str


@attrs.frozen
class InvoiceRow(InvoiceKey):
    """An invoice as stored (columns in ``_COLUMNS`` order; ``doc`` its current document)."""

    status: str
    created_ms: int
    due_ms: int
    revision: int
    number: str | None
    issuing_date: str | None
    finalized_ms: int | None
    content_hash: str | None
    audit_hash: bytes | None
    watermark: int | None
    voided_ms: int | None
    void_reason: str | None
    replaces: str | None
    doc: dict


def _row(r) -> InvoiceRow:
    values = list(r)
    values[-1] = orjson.loads(values[-1])
    if values[18] is not None:
        values[18] = bytes(values[18])
    return InvoiceRow(*values)


@attrs.frozen
class Draft(InvoiceKey):
    """What the service computed for one invoice: its identity, grace and document."""

    due_ms: int
    doc: dict
    replaces: str | None = None


# -- reads ---------------------------------------------------------------------------

def get_invoice(db: sqlite3.Connection, id_or_number: str) -> InvoiceRow | None:
    r = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM invoices WHERE id = ? OR number = ?",
                   (id_or_number, id_or_number)).fetchone()
    return _row(r) if r else None


def list_invoices(db: sqlite3.Connection, *, status: str | None = None, customer: str | None = None,
                  contract: str | None = None, period_label: str | None = None, due_before_ms: int | None = None,
                  limit: int = 1000, offset: int = 0) -> list[InvoiceRow]:
    where, args = [], []
    for col, v in (("status", status), ("customer", customer), ("contract", contract),
                   ("period_label", period_label)):
        if v is not None:
            where.append(f"{col} = ?")
            args.append(v)
    if due_before_ms is not None:
        where.append("due_ms <= ?")
        args.append(due_before_ms)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM invoices"
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY period_from_ms, contract, invoice_type DESC, created_ms LIMIT ? OFFSET ?"
    return [_row(r) for r in db.execute(sql, (*args, limit, offset))]


def revisions(db: sqlite3.Connection, invoice_id: str) -> list[dict]:
    return [{"revision": r, "created_ms": t, "actor": a, "contracts_digest": d, "watermark": w, "content_hash": h}
            for r, t, a, d, w, h in db.execute(
                "SELECT revision, created_ms, actor, contracts_digest, watermark, content_hash FROM invoice_revisions"
                " WHERE invoice_id = ? ORDER BY revision", (invoice_id,))]


# -- drafts --------------------------------------------------------------------------

def put_draft(db: sqlite3.Connection, d: Draft, actor: Actor, *, now_ms: int, watermark: int,
              contracts_digest: str) -> tuple[InvoiceRow, bool]:
    """Store a computed draft: a new invoice, or a new revision of a draft whose document
    changed. A finalized or voided invoice is returned untouched. (the row, whether it changed)"""
    old = get_invoice(db, d.id)
    if old is not None and (old.status != "draft" or old.content_hash == content_hash(d.doc)):
        return old, False
    h = content_hash(d.doc)
    body = audit.canonical(d.doc).decode()
    rev = 1 if old is None else old.revision + 1
    if old is None:
        db.execute(f"INSERT INTO invoices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                   (d.id, d.entity, d.customer, d.contract, d.subscription, d.invoice_type, d.period_from_ms,
                    d.period_to_ms, d.period_label, d.currency, "draft", now_ms, d.due_ms, rev, None, None, None,
                    h, None, watermark, None, None, d.replaces, body))
    else:
        db.execute("UPDATE invoices SET revision = ?, content_hash = ?, watermark = ?, due_ms = ?, body = ?"
                   " WHERE id = ? AND status = 'draft'", (rev, h, watermark, d.due_ms, body, d.id))
    db.execute("INSERT INTO invoice_revisions (invoice_id, revision, created_ms, actor, contracts_digest, watermark,"
               " content_hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (d.id, rev, now_ms, actor.label, contracts_digest, watermark, h, body))
    payload = {"revision": rev, "content_hash": h, "contracts_digest": contracts_digest, "watermark": watermark,
               "total_amount": d.doc.get("total_amount"), "period": d.period_label}
    if old is not None:
        payload["previous_total_amount"] = old.doc.get("total_amount")
    audit.append(db, actor, "invoice.drafted" if old is None else "invoice.refreshed", "invoice", d.id, payload,
                 at_ms=now_ms)
    return get_invoice(db, d.id), True


# -- numbers -------------------------------------------------------------------------

@attrs.frozen
class Numbering:
    """An entity's numbering: its prefix, mode (NUMBERING) and the YYYYMM stamp of the finalization day."""

    prefix: str
    mode: str = attrs.field(validator=attrs.validators.in_(NUMBERING))
    yyyymm: str = ""


def next_number(db: sqlite3.Connection, row: InvoiceRow, n: Numbering) -> tuple[str, dict]:
    """The number the invoice takes now, and the sequence columns that hold it (under the write lock)."""
    if n.mode == "per_entity":
        seq = db.execute("SELECT coalesce(max(entity_seq), 0) + 1 FROM invoices WHERE entity = ?",
                         (row.entity,)).fetchone()[0]
        return f"{n.prefix}-{n.yyyymm}-{seq:03d}", {"entity_seq": seq}
    cust = db.execute("SELECT seq FROM customer_numbers WHERE entity = ? AND customer = ?",
                      (row.entity, row.customer)).fetchone()
    if cust is None:
        cust = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM customer_numbers WHERE entity = ?",
                          (row.entity,)).fetchone()
        db.execute("INSERT INTO customer_numbers (entity, customer, seq) VALUES (?, ?, ?)",
                   (row.entity, row.customer, cust[0]))
    seq = db.execute("SELECT coalesce(max(invoice_seq), 0) + 1 FROM invoices WHERE entity = ? AND customer = ?",
                     (row.entity, row.customer)).fetchone()[0]
    return f"{n.prefix}-{cust[0]:03d}-{seq:03d}", {"customer_seq": cust[0], "invoice_seq": seq}


def peek_number(db: sqlite3.Connection, row: InvoiceRow, n: Numbering) -> str:
    """The number finalizing would take now (for a confirmation); nothing is written."""
    db.execute("SAVEPOINT peek")
    try:
        return next_number(db, row, n)[0]
    finally:
        db.execute("ROLLBACK TO peek")
        db.execute("RELEASE peek")


def finalize(db: sqlite3.Connection, row: InvoiceRow, doc: dict, n: Numbering, actor: Actor, *,
             now_ms: int, issuing_date: str) -> InvoiceRow:
    """Number and freeze a draft whose document ``doc`` is final (already refreshed)."""
    if row.status != "draft":
        raise ValueError(f"invoice {row.number or row.id} is {row.status}: only a draft can be finalized")
    number, seqs = next_number(db, row, n)
    doc = {**doc, "lago_id": row.id, "status": "finalized", "number": number, "issuing_date": issuing_date}
    h = content_hash(doc)
    entry = audit.append(db, actor, "invoice.finalized", "invoice", row.id,
                         {"number": number, "content_hash": h, "total_amount": doc.get("total_amount"),
                          "currency": row.currency, "revision": row.revision}, at_ms=now_ms)
    cols = ", ".join(f"{k} = ?" for k in seqs)
    db.execute(f"UPDATE invoices SET status = 'finalized', number = ?, {cols}, issuing_date = ?, finalized_ms = ?,"
               " content_hash = ?, audit_hash = ?, body = ? WHERE id = ? AND status = 'draft'",
               (number, *seqs.values(), issuing_date, now_ms, h, entry, audit.canonical(doc).decode(), row.id))
    return get_invoice(db, row.id)


def void(db: sqlite3.Connection, row: InvoiceRow, actor: Actor, reason: str, *, now_ms: int) -> InvoiceRow:
    """Void a finalized invoice: it keeps its number and content; it no longer counts."""
    if row.status != "finalized":
        raise ValueError(f"invoice {row.number or row.id} is {row.status}: only a finalized invoice can be voided")
    if not reason or not reason.strip():
        raise ValueError("voiding needs a reason")
    db.execute("UPDATE invoices SET status = 'voided', voided_ms = ?, void_reason = ? WHERE id = ?",
               (now_ms, reason, row.id))
    audit.append(db, actor, "invoice.voided", "invoice", row.id, {"number": row.number, "content_hash": row.content_hash},
                 at_ms=now_ms, reason=reason)
    return get_invoice(db, row.id)


def replaced(db: sqlite3.Connection, customer: str | None = None) -> set[str]:
    """The ids of the invoices (of ``customer``) that a later document replaces (late events, a regenerate)."""
    where, args = (" AND customer = ?", (customer,)) if customer is not None else ("", ())
    return {r[0] for r in db.execute(f"SELECT replaces FROM invoices WHERE replaces IS NOT NULL{where}", args)}


# -- credit notes --------------------------------------------------------------------

@attrs.frozen
class CreditNoteRow:
    id: str
    invoice_id: str
    seq: int
    number: str
    created_ms: int
    actor: str
    kind: str
    currency: str
    customer: str
    entity: str
    total: Decimal
    content_hash: str
    voided_ms: int | None
    doc: dict


_CN_COLUMNS = ("id", "invoice_id", "seq", "number", "created_ms", "actor", "kind", "currency", "customer", "entity",
               "total", "content_hash", "voided_ms", "body")


def _cn(r) -> CreditNoteRow:
    v = list(r)
    v[10] = Decimal(v[10])
    v[13] = orjson.loads(v[13])
    return CreditNoteRow(*v)


def credit_notes(db: sqlite3.Connection, *, invoice_id: str | None = None, contract: str | None = None,
                 customer: str | None = None) -> list[CreditNoteRow]:
    sql = f"SELECT {', '.join('c.' + k for k in _CN_COLUMNS)} FROM credit_notes c JOIN invoices i ON i.id = c.invoice_id"
    where, args = [], []
    for col, v in (("c.invoice_id", invoice_id), ("i.contract", contract), ("c.customer", customer)):
        if v is not None:
            where.append(f"{col} = ?")
            args.append(v)
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    return [_cn(r) for r in db.execute(sql + " ORDER BY c.created_ms, c.number", args)]


def get_credit_note(db: sqlite3.Connection, id_or_number: str) -> CreditNoteRow | None:
    r = db.execute(f"SELECT {', '.join(_CN_COLUMNS)} FROM credit_notes WHERE id = ? OR number = ?",
                   (id_or_number, id_or_number)).fetchone()
    return _cn(r) if r else None


def add_credit_note(db: sqlite3.Connection, inv: InvoiceRow, doc: dict, kind: str, total: Decimal, actor: Actor, *,
                    now_ms: int) -> CreditNoteRow:
    """Number (``<invoice number>-CN<seq>``) and store a credit note on a finalized invoice."""
    if inv.status != "finalized":
        raise ValueError(f"invoice {inv.number or inv.id} is {inv.status}: credit notes are issued on finalized invoices")
    if kind not in CREDIT_NOTE_KINDS:
        raise ValueError(f"a credit note is one of {', '.join(CREDIT_NOTE_KINDS)}, not {kind!r}")
    seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM credit_notes WHERE invoice_id = ?",
                     (inv.id,)).fetchone()[0]
    number = f"{inv.number}-CN{seq:03d}"
    cid = f"cn_{hashlib.sha256(f'{inv.id}/{seq}'.encode()).hexdigest()[:16]}"
    doc = {**doc, "lago_id": cid, "number": number, "sequential_id": seq, "invoice_number": inv.number,
           "lago_invoice_id": inv.id}
    h = content_hash(doc)
    db.execute(f"INSERT INTO credit_notes ({', '.join(_CN_COLUMNS)}) VALUES ({', '.join('?' * len(_CN_COLUMNS))})",
               (cid, inv.id, seq, number, now_ms, actor.label, kind, inv.currency, inv.customer, inv.entity,
                str(total), h, None, audit.canonical(doc).decode()))
    audit.append(db, actor, "credit_note.created", "credit_note", cid,
                 {"number": number, "invoice": inv.number, "kind": kind, "total": str(total), "content_hash": h},
                 at_ms=now_ms, reason=doc.get("reason"))
    return get_credit_note(db, cid)


def credited_so_far(db: sqlite3.Connection, invoice_id: str) -> Decimal:
    return sum((Decimal(t) for (t,) in db.execute("SELECT total FROM credit_notes WHERE invoice_id = ?",
                                                   (invoice_id,))), Decimal(0))


def record_uses(db: sqlite3.Connection, invoice_id: str, uses: list[tuple[str, Decimal]]) -> None:
    """The credit notes (by number) a finalized invoice consumed, and how much of each."""
    for number, amount in uses:
        cn = get_credit_note(db, number)
        if cn is not None:
            db.execute("INSERT OR REPLACE INTO credit_note_uses (credit_note_id, invoice_id, amount) VALUES (?, ?, ?)",
                       (cn.id, invoice_id, str(amount)))


# What a value that reads the stored invoices of some subscriptions depends on: each of their invoices (id,
# revision, status: a new draft, revision, finalization or void), the newest alert, credit note, credit note
# void and credit note use (alerts, credit notes and uses are never deleted). Index lookups only.
_LEDGER_STATE = """
SELECT (SELECT group_concat(id || ' ' || revision || ' ' || status, ',') FROM invoices WHERE subscription IN ({})),
       (SELECT coalesce(max(id), 0) FROM alerts),
       (SELECT coalesce(max(rowid), 0) || ' ' || coalesce(max(voided_ms), 0) FROM credit_notes),
       (SELECT coalesce(max(rowid), 0) FROM credit_note_uses)
"""


def ledger_state(db: sqlite3.Connection, subscriptions) -> tuple:
    """What the stored invoices of ``subscriptions``, the alerts and the credit notes are now (``_LEDGER_STATE``):
    equal states, nothing of them changed in between."""
    subs = sorted(subscriptions)
    return tuple(db.execute(_LEDGER_STATE.format(", ".join("?" * len(subs))), subs).fetchone())


def credit_uses(db: sqlite3.Connection, notes: list[str] | None = None) -> dict[str, Decimal]:
    """Credit note id -> what finalized invoices consumed of it (of ``notes`` only, when given). A voided
    invoice gave its use back. Summed as decimals: SQLite would sum the texts as floats."""
    if notes is not None and not notes:
        return {}
    sql, args = ("SELECT u.credit_note_id, u.amount FROM credit_note_uses u JOIN invoices i ON i.id = u.invoice_id"
                 " WHERE i.status = 'finalized'"), ()
    if notes is not None:
        sql, args = sql + f" AND u.credit_note_id IN ({', '.join('?' * len(notes))})", tuple(notes)
    out: dict[str, Decimal] = {}
    for note, amount in db.execute(sql, args):
        out[note] = out.get(note, Decimal(0)) + Decimal(amount)
    return out


def credit_left(db: sqlite3.Connection, cn: CreditNoteRow) -> Decimal:
    """A credit note's credit not yet consumed by finalized invoices (none once voided)."""
    if cn.kind != "credit" or cn.voided_ms is not None:
        return Decimal(0)
    return cn.total - credit_uses(db, [cn.id]).get(cn.id, Decimal(0))


def void_credit_note(db: sqlite3.Connection, cn: CreditNoteRow, actor: Actor, reason: str, *,
                     now_ms: int) -> CreditNoteRow:
    """Void what is left of a credit note's credit (Lago's ``PUT /credit_notes/:id/void``): invoices finalized from
    now on get none of it; the note itself and what invoices consumed of it before stay as they are."""
    if not reason or not reason.strip():
        raise ValueError("voiding needs a reason")
    if cn.voided_ms is not None:
        raise ValueError(f"credit note {cn.number} was voided before")
    left = credit_left(db, cn)
    if left <= 0:
        raise ValueError(f"credit note {cn.number} has no credit left to void"
                         + ("" if cn.kind == "credit" else f" (a {cn.kind} note carries no credit)"))
    db.execute("UPDATE credit_notes SET voided_ms = ? WHERE id = ?", (now_ms, cn.id))
    audit.append(db, actor, "credit_note.voided", "credit_note", cn.id, {"number": cn.number, "voided": str(left)},
                 at_ms=now_ms, reason=reason)
    return get_credit_note(db, cn.id)

