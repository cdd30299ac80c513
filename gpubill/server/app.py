"""The Lago-compatible events API as a Starlette app.

    POST /api/v1/events            one event        {"event": {...}}
    POST /api/v1/events/batch      all-or-nothing   {"events": [...]}
    GET  /api/v1/events/{transaction_id}
    GET  /api/v1/events            ?code=&external_subscription_id=&timestamp_from=&timestamp_to=&page=&per_page=
    GET  /healthz                  no auth
    GET  /metrics                  Prometheus text, no auth

Auth is ``Authorization: Bearer <key>`` (``gpubill keys create``): 401 for a
missing or unknown key. Each route names the permission it needs
(``ROUTE_PERMISSIONS``; the roles are in gpubill/store/roles.py); the key is the
request's actor (``api:NAME`` with the key's role), and a key whose role lacks
the permission gets 403 in Lago's error shape, and the refusal is written to
the audit log (``access.refused``). Bodies over the limit get
413, bodies that do not arrive within the body timeout 408. Every request that
carries an event we cannot accept (malformed JSON, invalid UTF-8, a missing
root, an invalid event) is answered 4xx and its raw payload is kept in
quarantine. An event is acknowledged (200) only after its transaction has
committed; with a cluster's intake (``gpubill serve --events --intake``), 202
once the intake has it on disk (each event's ``status``: "accepted"), and an
ingest worker stores it. A body cut short by the client (or by the timeout) stores nothing.

Load is shed, not queued: the events of requests admitted but not yet
committed are counted, and a request that would take them past
``max_pending`` is answered 429 with ``Retry-After`` and stores nothing
(the client sends it again later); its body is read, and parsed only when the
writer had room when it arrived.

Store failures are never a generic 500: 507 when the store's disk is full,
503 for any other store I/O failure, and /healthz answers 503 with the reason
(``Store.health()``) after a failed write until a write succeeds again.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import anyio
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gpubill.lago import events_api as lago
from gpubill.service.events import ACCEPTED, CONFLICT, REJECTED, Store, Unparsable, intake_lag
from gpubill.service.access import Actor, Forbidden, key_actor

from .metrics import Metrics
from .params import BadParam, page_meta, page_params, time_bound
from .storefail import StoreFailure, failure_of

DEFAULT_BATCH_LIMIT = 10_000
DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_BODY_TIMEOUT_S = 60.0
PENDING_BATCHES = 8         # default max_pending: this many full batches waiting for the writer
RETRY_AFTER_S = 1           # what a 429 tells the client to wait
MAX_KEY_LEN = 256           # longer Authorization keys are refused unread (and never cached)
CLIENT_GONE = 499           # nginx's "client closed request": counted in metrics, never sent

log = logging.getLogger("uvicorn.error")


class _TooLarge(Exception):
    pass


class _SlowBody(Exception):
    pass


class Api:
    def __init__(self, store: Store, *, batch_limit: int = DEFAULT_BATCH_LIMIT,
                 max_body: int = DEFAULT_MAX_BODY, body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
                 max_pending: int | None = None):
        self.store = store
        self.batch_limit = batch_limit
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_pending = PENDING_BATCHES * batch_limit if max_pending is None else max_pending
        if self.max_pending < batch_limit:
            raise ValueError(f"max_pending ({self.max_pending}) must hold one batch ({batch_limit})")
        self._pending = 0  # events admitted and not yet committed (or refused)
        self._plock = threading.Lock()
        self.metrics = Metrics()
        self._keys: dict[str, tuple[Actor | None, float]] = {}

    # -- plumbing ----------------------------------------------------------
    def _actor(self, request: Request) -> Actor | None:
        """The request's key as an actor; None for a missing, unknown or revoked key."""
        h = request.headers.get("authorization", "")
        if not h[:7].lower() == "bearer ":
            return None
        key = h[7:].strip()
        if not key or len(key) > MAX_KEY_LEN:
            return None
        hit = self._keys.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        actor = key_actor(self.store, key)
        if len(self._keys) > 1000:
            self._keys.clear()
        self._keys[key] = (actor, now + 5.0)  # revocation takes effect within 5 s
        return actor

    async def _body(self, request: Request) -> bytes:
        """The whole body, or _TooLarge, _SlowBody, or ClientDisconnect (nothing is kept)."""
        n = request.headers.get("content-length")
        if n is not None and n.isdigit() and int(n) > self.max_body:
            raise _TooLarge
        try:
            with anyio.fail_after(self.body_timeout):
                return await self._read_body(request)
        except TimeoutError:
            raise _SlowBody from None

    async def _read_body(self, request: Request) -> bytes:
        chunks, size = [], 0
        async for c in request.stream():
            size += len(c)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(c)
        return b"".join(chunks)

    def _timed(self, route: str, handler, permission: str | None):
        """The endpoint: auth (permission None: no auth), the handler, errors as responses, metrics."""
        async def endpoint(request: Request):
            t0 = time.perf_counter()
            try:
                resp = await self._authorized(request, handler, route, permission)
            except _TooLarge:
                resp = lago.error(413, "Payload Too Large", "request_too_large",
                                  {"body": [f"larger than {self.max_body} bytes"]})
            except _SlowBody:
                resp = _unread(lago.error(408, f"Request Timeout: the body did not arrive within "
                                               f"{self.body_timeout:g} s; nothing was stored", "request_timeout"))
            except ClientDisconnect:
                log.info("client %s hung up before sending the whole body of %s %s; nothing was stored",
                         _peer(request), request.method, request.url.path)
                resp = Response(status_code=CLIENT_GONE)
            except BadParam as e:
                resp = lago.error(400, f"BadRequest: {e}", "invalid_parameter", {e.name: [e.code]})
            except StoreFailure as e:
                resp = lago.error(e.status, e.message, e.code)
            except Forbidden as e:  # refused (and logged) by the store, below the route's own check
                resp = _forbidden(e)
            except Exception:  # a bug: the traceback for the operator, a counted 500 for the client
                log.exception("gpubill: internal error in %s %s", request.method, request.url.path)
                resp = lago.error(500, "Internal Server Error")
            self.metrics.observe(route, resp.status_code, time.perf_counter() - t0)
            return resp
        return endpoint

    async def _authorized(self, request: Request, handler, route: str, permission: str | None):
        """The handler, if the request's key may (``request.state.actor`` is the key's actor)."""
        if permission is not None:
            actor = await run_in_threadpool(self._read, self._actor, request)
            if actor is None:
                return lago.unauthorized()
            if not actor.may(permission):
                refusal = await run_in_threadpool(self._refuse, actor, permission, route,
                                                  f"{request.method} {request.url.path}")
                return lago.forbidden() if permission == "ingest" else _forbidden(refusal)
            request.state.actor = actor
        return await handler(request)

    def _refuse(self, actor: Actor, permission: str, route: str, request_line: str) -> Forbidden:
        """The refusal, written to the audit log (``Store.require`` logs it, then raises it)."""
        try:
            self._write(self.store.require, actor, permission, route, "http", request_line)
        except Forbidden as e:
            return e
        raise AssertionError(f"{actor.label} was refused {permission} but the store allows it")

    def _write(self, fn, *args):
        """``fn(*args)`` changing the store; a store failure raises StoreFailure."""
        try:
            return fn(*args)
        except Exception as e:
            failure = failure_of(e, writing=True)
            if failure is None:
                raise
            raise failure from None

    def _read(self, fn, *args):
        """``fn(*args)`` against the store; a store failure raises StoreFailure."""
        try:
            return fn(*args)
        except Exception as e:
            failure = failure_of(e, writing=False)
            if failure is None:
                raise
            raise failure from None

    def _ingest(self, events: list, **kw):
        """store.ingest; a store failure raises StoreFailure (the store remembers it for /healthz)."""
        failing = self.store.health()
        try:
            rec = self.store.ingest(events, **kw)
        except Exception as e:
            failure = failure_of(e, writing=True)
            if failure is None:
                raise
            if failing is None:
                log.warning("gpubill: store write failed, answering %d: %s", failure.status, e)
            raise failure from None
        if failing is not None:
            log.warning("gpubill: store writes succeed again")
        self.metrics.count_events(rec.counts())
        return rec

    def _admit(self, n: int) -> bool:
        """Count ``n`` more events as waiting for the writer, unless that passes ``max_pending``."""
        with self._plock:
            if self._pending + n > self.max_pending:
                return False
            self._pending += n
            return True

    def _ingest_admitted(self, events: list, **kw):
        """The receipt of ``events`` (``_ingest``), or None when the writer is too far behind."""
        if not self._admit(len(events)):
            return None
        try:
            return self._ingest(events, **kw)
        finally:
            with self._plock:
                self._pending -= len(events)

    def _behind(self) -> bool:
        """No room for even one more event: answer 429 before parsing anything."""
        return self._pending >= self.max_pending

    def _quarantine(self, raw: bytes, message: str):
        return self._ingest([Unparsable(message)], raws=[raw], source="http")

    def _parse(self, body: bytes, root: str):
        """(document, None) or (None, error response) — bad bodies are quarantined."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            msg = f"malformed JSON: {e}"
            self._quarantine(body, msg)
            return None, lago.bad_request(msg)
        if not isinstance(doc, dict) or root not in doc:
            msg = f"param is missing or the value is empty: {root}"
            self._quarantine(body, msg)
            return None, lago.bad_request(msg)
        return doc, None

    # -- endpoints ---------------------------------------------------------
    async def create(self, request: Request):
        body = await self._body(request)
        if self._behind():
            return lago.too_busy(RETRY_AFTER_S)
        return await run_in_threadpool(self._create, body)

    def _create(self, body: bytes):
        doc, err = self._parse(body, "event")
        if err:
            return err
        rec = self._ingest_admitted([doc["event"]], source="http")
        if rec is None:
            return lago.too_busy(RETRY_AFTER_S)
        st = int(rec.status[0])
        if st == REJECTED:
            return lago.validation(lago.problems_details(rec.problems[0]))
        if st == CONFLICT:
            return lago.validation(lago.ALREADY_EXISTS)
        if st == ACCEPTED:  # in a cluster's intake: an ingest worker stores it (its id is not known yet)
            e = doc["event"]
            ts, created = lago.iso_ms([rec.timestamp_ms[0], rec.received_ms])
            body = lago.event_body(lago.lago_ids(rec.key)[0], e["transaction_id"], e["external_subscription_id"],
                                   e["code"], ts, e.get("properties") or {}, e.get("precise_total_amount_cents"),
                                   created)
            return lago.JSONResponse({"event": {**body, "status": "accepted"}}, status_code=202)
        r = self._read(self.store.get_event, int(rec.event_id[0]))
        return lago.JSONResponse({"event": lago.from_record(r)})

    async def batch(self, request: Request):
        body = await self._body(request)
        if self._behind():
            return lago.too_busy(RETRY_AFTER_S)
        return await run_in_threadpool(self._batch, body)

    def _batch(self, body: bytes):
        doc, err = self._parse(body, "events")
        if err:
            return err
        events = doc["events"]
        if not isinstance(events, list):
            self._quarantine(body, "events must be an array")
            return lago.validation({"events": ["invalid_type"]})
        if not events:
            return lago.validation({"events": ["no_events"]})
        if len(events) > self.batch_limit:
            return lago.validation({"events": ["too_many_events"]})
        rec = self._ingest_admitted(events, source="http-batch", atomic=True)
        if rec is None:
            return lago.too_busy(RETRY_AFTER_S)
        if not rec.ok:
            return lago.validation(_refused(rec))
        ts = lago.iso_ms(rec.timestamp_ms)
        created = lago.iso_ms([rec.received_ms])[0]
        ids = lago.lago_ids(rec.key)
        # lago.event_body's shape, inlined: one dict per event is most of the response's cost
        out = [{"lago_id": i, "transaction_id": e["transaction_id"], "lago_customer_id": None,
                "code": e["code"], "timestamp": t,
                "precise_total_amount_cents": None if (p := e.get("precise_total_amount_cents")) is None
                else str(p),
                "properties": e.get("properties") or {}, "lago_subscription_id": None,
                "external_subscription_id": e["external_subscription_id"], "created_at": created}
               for i, e, t in zip(ids, events, ts)]
        if (rec.status == ACCEPTED).any():  # a cluster's intake has them: 202, each one's status
            for o, st in zip(out, rec.status.tolist()):
                o["status"] = "accepted" if st == ACCEPTED else "duplicate" if st else "ingested"
            return lago.JSONResponse({"events": out}, status_code=202)
        return lago.JSONResponse({"events": out})

    async def show(self, request: Request):
        txn = request.path_params["transaction_id"]
        sub = request.query_params.get("external_subscription_id")
        rows = await run_in_threadpool(self._read, self.store.get_events, txn, sub)
        if not rows:
            return lago.error(404, "Not Found", "event_not_found")
        return lago.JSONResponse({"event": lago.from_record(rows[0])})

    async def index(self, request: Request):
        q = request.query_params
        page, per_page = page_params(q)
        filters = {"code": q.get("code"), "sub": q.get("external_subscription_id"),
                   "time_from_ms": time_bound(q, "timestamp_from"), "time_to_ms": time_bound(q, "timestamp_to")}

        def work():
            total = self.store.count_events(**filters)
            rows = self.store.list_events(**filters, limit=per_page, offset=(page - 1) * per_page)
            return total, rows
        total, rows = await run_in_threadpool(self._read, work)
        return lago.JSONResponse({"events": [lago.from_record(r) for r in rows],
                                  "meta": page_meta(page, per_page, total)})

    async def healthz(self, request: Request):
        reason = self.store.health()
        if reason is not None:
            return lago.JSONResponse({"status": "unhealthy", "reason": reason}, status_code=503)
        return lago.JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request):
        lag = await run_in_threadpool(self._intake_lag)
        return PlainTextResponse(self.metrics.render(self._pending, lag), media_type="text/plain; version=0.0.4")

    def _intake_lag(self) -> dict | None:
        """The cluster intake's lag for /metrics (None: no intake, or it does not answer: left out)."""
        try:
            return intake_lag(self.store)
        except Exception as e:
            if failure_of(e, writing=False) is None:
                raise
            log.warning("gpubill: /metrics: the intake's lag is unknown: %s", e)
            return None


def create_app(store: Store, contracts: list[str] | None = None, **options) -> Starlette:
    """The ASGI app over an open store (the caller closes the store) and the ``.bill`` files
    ``contracts`` (invoice refresh and finalize, estimates; None: $GPUBILL_CONTRACTS).

    The invoice and estimate calls load the contracts layer, imported here rather than with
    this module: the event commands import this module and never the engine.
    """
    from .estimate_api import CONTRACTS_ENV, EstimateApi
    from .lifecycle_api import LifecycleApi
    from .portal.app import PortalApp

    if contracts is None:
        contracts = [p for p in os.environ.get(CONTRACTS_ENV, "").split(os.pathsep) if p]
    api = Api(store, **options)
    estimates = EstimateApi(api, contracts)
    invoices = LifecycleApi(api, contracts)
    portal = PortalApp(api, contracts)
    routes = [
        Route("/api/v1/events", api._timed("create", api.create, "ingest"), methods=["POST"]),
        Route("/api/v1/events/batch", api._timed("batch", api.batch, "ingest"), methods=["POST"]),
        Route("/api/v1/events", api._timed("index", api.index, "read"), methods=["GET"]),
        Route("/api/v1/events/estimate_fees", api._timed("estimate_fees", estimates.estimate_fees, "read"),
              methods=["POST"]),
        Route("/api/v1/estimate", api._timed("estimate", estimates.estimate, "read"), methods=["POST"]),
        Route("/api/v1/events/{transaction_id:path}", api._timed("show", api.show, "read"), methods=["GET"]),
        *lifecycle_routes(api, invoices),
        Route("/healthz", api._timed("healthz", api.healthz, None), methods=["GET"]),
        Route("/metrics", api._timed("metrics", api.metrics_text, None), methods=["GET"]),
        *portal.routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed,
                                                       500: _server_error})
    app.state.api = api
    return app


def lifecycle_routes(api: Api, invoices) -> list[Route]:
    """The invoice, credit-note and audit-log calls (gpubill/server/lifecycle_api.py), each with its permission."""
    calls = (("GET", "/api/v1/invoices", "invoices", invoices.list_invoices, "read"),
             ("GET", "/api/v1/invoices/{id}", "invoice", invoices.show_invoice, "read"),
             ("PUT", "/api/v1/invoices/{id}/refresh", "invoice_refresh", invoices.refresh, "refresh"),
             ("PUT", "/api/v1/invoices/{id}/finalize", "invoice_finalize", invoices.finalize, "finalize"),
             ("POST", "/api/v1/invoices/{id}/void", "invoice_void", invoices.void, "void"),
             ("POST", "/api/v1/credit_notes", "credit_note_create", invoices.create_credit_note, "credit_note"),
             ("GET", "/api/v1/credit_notes", "credit_notes", invoices.list_credit_notes, "read"),
             ("GET", "/api/v1/credit_notes/{id}", "credit_note", invoices.show_credit_note, "read"),
             ("PUT", "/api/v1/credit_notes/{id}/void", "credit_note_void", invoices.void_credit_note, "credit_note"),
             ("GET", "/api/v1/customers/{id}/current_usage", "current_usage", invoices.current_usage, "read"),
             ("GET", "/api/v1/audit_logs", "audit_logs", invoices.audit_logs, "read"))
    return [Route(path, api._timed(name, handler, permission), methods=[method])
            for method, path, name, handler, permission in calls]


def _unread(resp: Response) -> Response:
    """An answer to a body that stopped arriving: the connection closes after it.

    (A 413 keeps the connection: the server reads and drops the rest, so that a client
    still sending gets the answer rather than a reset.)
    """
    resp.headers["connection"] = "close"
    return resp


def _refused(rec) -> dict:
    """A failed batch's error_details in Lago's shape: its rejected and conflicting events."""
    status = rec.status.tolist()
    return lago.batch_errors({i: rec.problems.get(i, ()) for i, st in enumerate(status) if st == REJECTED},
                             [i for i, st in enumerate(status) if st == CONFLICT])


def _peer(request: Request) -> str:
    c = request.client
    return f"{c.host}:{c.port}" if c else "?"


def _forbidden(e: Forbidden):
    """403 in Lago's error shape; error_details name the permission and say who lacks it."""
    return lago.error(403, "Forbidden", "action_not_allowed", {"permission": [e.permission], "reason": [str(e)]})


async def _not_found(request, exc):
    return lago.error(404, "Not Found")


async def _not_allowed(request, exc):
    return lago.error(405, "Method Not Allowed")


async def _server_error(request, exc):
    return lago.error(500, "Internal Server Error")
