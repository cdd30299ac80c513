"""The invoice lifecycle over HTTP, in Lago's shapes (invoicing.md §1), for Lago's own clients.

    GET  /api/v1/invoices                 ?external_customer_id=&status=&issuing_date_from=&issuing_date_to=
                                          &page=&per_page=             read      -> {"invoices": [...], "meta"}
    GET  /api/v1/invoices/{id}            id or number                 read      -> {"invoice": {...}}
    PUT  /api/v1/invoices/{id}/refresh    a draft re-rated from the events as they are now (others unchanged)
                                                                       refresh
    PUT  /api/v1/invoices/{id}/finalize   refreshed once more, numbered and frozen     finalize
    POST /api/v1/invoices/{id}/void       {"reason"?}: keeps its number                void
    POST /api/v1/credit_notes             {"credit_note": {"invoice_id", "reason"?, "description"?,
                                          "credit_amount_cents" | "refund_amount_cents" | "offset_amount_cents",
                                          "items"?: [{"fee_id", "amount_cents"}]}}
                                                                       credit_note -> {"credit_note": {...}}
    GET  /api/v1/credit_notes             ?external_customer_id=&invoice_id=&page=&per_page=   read
    GET  /api/v1/credit_notes/{id}        id or number                 read
    PUT  /api/v1/credit_notes/{id}/void   the credit left voided (405 no_voidable_amount when none)   credit_note
    GET  /api/v1/customers/{id}/current_usage  ?external_subscription_id=   read  -> {"customer_usage": {...}}
                                          (Lago's shape; gpubill/service/usage.py)
    GET  /api/v1/audit_logs               ?after=&action=&object_id=&per_page=                   read
                                          -> {"audit_logs": [...], "meta": {"next_after"}}

Each call is made by the request's key (``request.state.actor``) through
``service.lifecycle``, which checks the role again in the store. An invoice
is the stored document (docs/invoice-json.md) with what Lago's clients
require beside it (``lago_id``, ``payment_overdue``, ``net_payment_term``,
``version_number``, the customer's ``lago_id`` and times). A credit note is
one kind of money movement: exactly one of the three ``*_amount_cents``
above 0 (tax included), with Lago's ``items`` (``fee_id``: a fee's
``lago_id`` on the invoice, ``amount_cents`` before tax; each at most what
its fee can still be credited, and the amount their sum with their taxes,
within a cent), or without them spread over the fees in proportion to what
each can still be credited. Errors in Lago's envelope: 404
``invoice_not_found`` / ``credit_note_not_found``, 405 ``invalid_status``
(finalizing or voiding an invoice that is not a draft / not finalized),
422 ``validation_errors``, 503 ``contracts_not_loaded`` when `gpubill serve`
was started without ``--contracts`` (refresh, finalize and current usage need them).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gpubill.dsl.currencies import minor_unit
from gpubill.lago import events_api as lago
from gpubill.service import lifecycle, usage
from gpubill.service.access import audit_entries
from gpubill.service.lifecycle import CREDIT_NOTE_REASONS, LifecycleError
from gpubill.service.rating import ServiceError

from .params import DEFAULT_PER_PAGE, MAX_PER_PAGE, BadParam, count, page_meta, page_params

LAGO_VERSION_NUMBER = 4  # Lago's invoice version: fees with their own taxes (what gpubill writes)
KINDS = ("credit", "refund", "offset")
DEFAULT_VOID_REASON = "voided through the API"
MAX_SEQ = 10**12 - 1  # ?after=: the most 12 digits hold (what params.count reads), beyond any log
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _NotFound(Exception):
    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


class _NotAllowed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class LifecycleApi:
    """The lifecycle endpoints over the app's store (``api``) and the contracts ``serve`` was given."""

    def __init__(self, api, contract_paths: list[str] | None):
        self.api = api
        self.contracts = contract_paths or []

    # -- plumbing --------------------------------------------------------------------
    async def _call(self, request: Request, fn, *args):
        """``fn(store, actor, *args)`` in a thread; its answer, or the error in Lago's envelope."""
        actor = request.state.actor
        try:
            return await run_in_threadpool(self.api._write, fn, self.api.store, actor, *args)
        except _NotFound as e:
            return lago.error(404, "Not Found", f"{e.what}_not_found")
        except _Invalid as e:
            return lago.validation({e.field: [str(e)]})
        except _NotAllowed as e:
            return lago.error(405, "Method Not Allowed", e.code, {"credit_note": [str(e)]})
        except LifecycleError as e:
            return lago.error(405, "Method Not Allowed", "invalid_status", {"status": [str(e)]})
        except ServiceError as e:  # the contracts cannot be loaded or invoiced
            return lago.validation({"contracts": [str(e)]})

    def _need_contracts(self):
        if not self.contracts:
            return lago.error(503, "Service Unavailable: no contracts loaded; start gpubill serve with --contracts DIR",
                              "contracts_not_loaded")
        return None

    # -- invoices ----------------------------------------------------------------------
    async def list_invoices(self, request: Request):
        q = request.query_params
        page, per_page = page_params(q)
        filters = {"customer": q.get("external_customer_id"), "status": q.get("status"),
                   "issued_from": _date(q, "issuing_date_from"), "issued_to": _date(q, "issuing_date_to")}
        return await self._call(request, _list_invoices, filters, page, per_page)

    async def show_invoice(self, request: Request):
        return await self._call(request, _show_invoice, request.path_params["id"])

    async def refresh(self, request: Request):
        return self._need_contracts() or await self._call(request, _refresh, self.contracts, request.path_params["id"])

    async def finalize(self, request: Request):
        return self._need_contracts() or await self._call(request, _finalize, self.contracts, request.path_params["id"])

    async def void(self, request: Request):
        body = await self.api._body(request)
        try:
            reason = _object(body, None).get("reason") or DEFAULT_VOID_REASON
        except _Invalid as e:
            return lago.bad_request(str(e))
        return await self._call(request, _void, request.path_params["id"], str(reason))

    # -- credit notes -------------------------------------------------------------------
    async def create_credit_note(self, request: Request):
        body = await self.api._body(request)
        try:
            note = _object(body, "credit_note")
        except _Invalid as e:
            return lago.bad_request(str(e))
        return await self._call(request, _create_credit_note, note)

    async def void_credit_note(self, request: Request):
        return await self._call(request, _void_credit_note, request.path_params["id"])

    async def list_credit_notes(self, request: Request):
        q = request.query_params
        page, per_page = page_params(q)
        filters = {"customer": q.get("external_customer_id"), "invoice_id": q.get("invoice_id")}
        return await self._call(request, _list_credit_notes, filters, page, per_page)

    async def show_credit_note(self, request: Request):
        return await self._call(request, _show_credit_note, request.path_params["id"])

    # -- usage --------------------------------------------------------------------------------
    async def current_usage(self, request: Request):
        subscription = request.query_params.get("external_subscription_id")
        if not subscription:
            return lago.bad_request("param is missing or the value is empty: external_subscription_id")
        return self._need_contracts() or await self._call(request, _current_usage, self.contracts,
                                                          request.path_params["id"], subscription)

    # -- audit log ------------------------------------------------------------------------
    async def audit_logs(self, request: Request):
        q = request.query_params
        after = count(q, "after", 0, MAX_SEQ, lo=0)
        per_page = count(q, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        return await self._call(request, _audit_logs, after, per_page, q.get("action"), q.get("object_id"))


# -- the work (in a thread: store, actor first) -------------------------------------------

def _list_invoices(store, actor, filters: dict, page: int, per_page: int):
    issued_from, issued_to = filters.pop("issued_from"), filters.pop("issued_to")
    rows = [r for r in lifecycle.list_invoices(store, actor, **{k: v for k, v in filters.items() if v is not None},
                                               limit=1 << 30)
            if _issued_within(r, issued_from, issued_to)]
    shown = rows[(page - 1) * per_page: page * per_page]
    return lago.JSONResponse({"invoices": [lago_invoice(r) for r in shown],
                              "meta": page_meta(page, per_page, len(rows))})


def _issued_within(row, first: str | None, last: str | None) -> bool:
    day = row.issuing_date or row.doc.get("issuing_date") or ""
    return (first is None or day >= first) and (last is None or day <= last)


def _invoice(store, actor, ref: str):
    try:
        return lifecycle.get_invoice(store, actor, ref)
    except LifecycleError as e:
        raise _NotFound("invoice", str(e)) from None


def _show_invoice(store, actor, ref: str):
    return _invoice_response(_invoice(store, actor, ref))


def _refresh(store, actor, contracts: list[str], ref: str):
    """Lago's refresh: a draft is re-rated (a new revision if its content changed); any other invoice is left."""
    row = _invoice(store, actor, ref)
    if row.status == "draft":
        lifecycle.refresh(store, contracts, actor, _day_within(row), row.subscription)
        row = _invoice(store, actor, row.id)
    return _invoice_response(row)


def _finalize(store, actor, contracts: list[str], ref: str):
    row = _invoice(store, actor, ref)
    return _invoice_response(lifecycle.finalize(store, contracts, actor, row.id))


def _void(store, actor, ref: str, reason: str):
    row = _invoice(store, actor, ref)
    return _invoice_response(lifecycle.void(store, actor, row.id, reason))


def _create_credit_note(store, actor, note: dict):
    row = _invoice(store, actor, str(note.get("invoice_id") or ""))
    kind, cents = _kind_and_cents(note)
    reason = note.get("reason") or "other"
    if reason not in CREDIT_NOTE_REASONS:
        raise _Invalid("reason", f"must be one of {', '.join(CREDIT_NOTE_REASONS)}")
    amount = Decimal(cents).scaleb(-minor_unit(row.currency))
    items = _items(row, note["items"]) if note.get("items") is not None else None
    try:
        cn = lifecycle.credit_note(store, actor, row.id, kind=kind, amount=amount, items=items, reason=reason,
                                   description=str(note.get("description") or ""))
    except LifecycleError as e:
        raise _Invalid("items" if items is not None else "credit_note", str(e)) from None
    return lago.JSONResponse({"credit_note": lago_credit_note(store, cn)})


def _items(row, items) -> list[tuple[int, Decimal]]:
    """Lago's ``items`` ([{"fee_id", "amount_cents"}]: before tax) as (fee index, amount)."""
    index = {lifecycle.fee_id(row.id, i): i for i in range(len(row.doc["fees"]))}
    if not isinstance(items, list) or not items:
        raise _Invalid("items", "must be a list of {fee_id, amount_cents}, not empty")
    out = []
    for it in items:
        fee, cents = (it.get("fee_id"), it.get("amount_cents")) if isinstance(it, dict) else (None, None)
        if fee not in index:
            raise _Invalid("items", f"no fee {fee!r} on invoice {row.number} (its fees' lago_id)")
        if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0:
            raise _Invalid("items", "each item's amount_cents must be a positive integer (minor units, before tax)")
        out.append((index[fee], Decimal(cents).scaleb(-minor_unit(row.currency))))
    return out


def _kind_and_cents(note: dict) -> tuple[str, int]:
    given = {k: note.get(f"{k}_amount_cents") for k in KINDS if note.get(f"{k}_amount_cents") not in (None, 0)}
    if len(given) != 1:
        raise _Invalid("amount_cents", "give exactly one of credit_amount_cents, refund_amount_cents, "
                                       "offset_amount_cents above 0")
    [(kind, cents)] = given.items()
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
        raise _Invalid(f"{kind}_amount_cents", "must be a positive integer (minor units)")
    return kind, cents


def _list_credit_notes(store, actor, filters: dict, page: int, per_page: int):
    notes = lifecycle.list_credit_notes(store, actor, **{k: v for k, v in filters.items() if v is not None})
    shown = notes[(page - 1) * per_page: page * per_page]
    return lago.JSONResponse({"credit_notes": [lago_credit_note(store, n) for n in shown],
                              "meta": page_meta(page, per_page, len(notes))})


def _show_credit_note(store, actor, ref: str):
    try:
        cn = lifecycle.get_credit_note(store, actor, ref)
    except LifecycleError:
        raise _NotFound("credit_note", ref) from None
    return lago.JSONResponse({"credit_note": lago_credit_note(store, cn)})


def _void_credit_note(store, actor, ref: str):
    try:
        cn = lifecycle.get_credit_note(store, actor, ref)
    except LifecycleError:
        raise _NotFound("credit_note", ref) from None
    try:
        cn, _ = lifecycle.void_credit_note(store, actor, cn.id, DEFAULT_VOID_REASON)
    except LifecycleError as e:
        raise _NotAllowed("no_voidable_amount", str(e)) from None
    return lago.JSONResponse({"credit_note": lago_credit_note(store, cn)})


def _current_usage(store, actor, contracts: list[str], customer: str, subscription: str):
    try:
        return lago.JSONResponse({"customer_usage": usage.current_usage(store, contracts, actor, customer,
                                                                        subscription)})
    except usage.UsageNotFound as e:
        raise _NotFound("customer", str(e)) from None


def _audit_logs(store, actor, after: int, per_page: int, action: str | None, object_id: str | None):
    store.require(actor, "read", "audit.log", "audit_log", "*")
    found = audit_entries(store, after=after, limit=per_page, action=action, object_id=object_id)
    return lago.JSONResponse({"audit_logs": [e.as_dict() for e in found],
                              "meta": {"next_after": found[-1].seq if len(found) == per_page else None}})


# -- Lago's wire shapes --------------------------------------------------------------------

def _invoice_response(row):
    return lago.JSONResponse({"invoice": lago_invoice(row)})


def lago_invoice(row) -> dict:
    """The stored document as Lago's invoice object: its state from the row, and the fields Lago's clients require."""
    doc = row.doc
    created = _iso(row.created_ms)
    updated = _iso(max(t for t in (row.created_ms, row.finalized_ms, row.voided_ms) if t is not None))
    issuing = row.issuing_date or doc.get("issuing_date")
    thresholds = {"applied_usage_thresholds": [_threshold(t, row.currency) for t in doc["applied_usage_thresholds"]]} \
        if "applied_usage_thresholds" in doc else {}
    fees = [{**f, "lago_id": lifecycle.fee_id(row.id, i)} for i, f in enumerate(doc["fees"])]
    return {**doc, **thresholds, "fees": fees, "lago_id": row.id, "status": row.status,
            "number": row.number or doc.get("number"), "issuing_date": issuing, "payment_overdue": False,
            "net_payment_term": doc.get("net_payment_term", 0),
            "version_number": LAGO_VERSION_NUMBER, "created_at": created, "updated_at": updated,
            "voided_at": _iso(row.voided_ms) if row.voided_ms else None, "content_hash": row.content_hash,
            "customer": _customer(doc, created)}


def _customer(doc: dict, created: str) -> dict:
    """The document's customer block with what Lago's customer object requires (its id is the external id)."""
    customer = doc.get("customer") or {}
    return {**customer, "lago_id": customer.get("external_id"), "created_at": created, "updated_at": created,
            "applicable_timezone": "UTC"}


def _threshold(amount: str, currency: str) -> dict:
    """A passed progressive-billing threshold (an amount in currency units) as Lago's applied usage threshold."""
    return {"usage_threshold": {"amount_cents": int(Decimal(amount).scaleb(minor_unit(currency)))}}


def lago_credit_note(store, cn) -> dict:
    """A stored credit note as Lago's credit-note object (balance = its credit not yet consumed)."""
    doc = cn.doc
    left = lifecycle.credit_left(store, cn)
    balance = int(left.scaleb(minor_unit(cn.currency)))
    status = "voided" if cn.voided_ms else ("consumed" if cn.kind == "credit" and left <= 0 else doc.get("credit_status"))
    items = [{**it, "lago_id": f"{cn.id}_{n}",
              "fee": {**it["fee"], "lago_id": lifecycle.fee_id(cn.invoice_id, it["fee_index"])}}
             for n, it in enumerate(doc["items"])]
    return {**doc, "items": items, "lago_id": cn.id, "credit_status": status, "balance_amount_cents": balance,
            "coupons_adjustment_amount_cents": doc.get("coupons_adjustment_amount_cents", 0),
            "taxes_rate": str(_tax_rate(doc)), "created_at": _iso(cn.created_ms), "updated_at": _iso(cn.created_ms),
            "customer": _customer(doc, _iso(cn.created_ms))}


def _tax_rate(doc: dict) -> Decimal:
    """The note's tax rate in percent (Lago's ``taxes_rate``, a number there: a decimal string here, never a float)."""
    return sum((Decimal(t["tax_rate"]) for t in doc.get("applied_taxes", ())), Decimal(0))


def _object(body: bytes, root: str | None) -> dict:
    """The JSON object of a body (``root``: the object under that key); {} for an empty optional body."""
    if not body.strip() and root is None:
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise _Invalid("body", f"malformed JSON: {e}") from None
    doc = doc.get(root) if isinstance(doc, dict) and root else doc
    if not isinstance(doc, dict):
        raise _Invalid("body", f"param is missing or the value is empty: {root}" if root else "not a JSON object")
    return doc


def _date(q, name: str) -> str | None:
    v = q.get(name)
    if v is None:
        return None
    if not _DATE.fullmatch(v):
        raise BadParam(name, "invalid_date", "must be a date YYYY-MM-DD")
    return v


def _day_within(row) -> str:
    """A date inside the invoice's billing period (what `lifecycle.refresh` takes to find that period)."""
    mid = (row.period_from_ms + row.period_to_ms) // 2
    return dt.datetime.fromtimestamp(mid / 1000, dt.timezone.utc).date().isoformat()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
