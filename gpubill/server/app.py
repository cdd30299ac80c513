"""The Lago-compatible events API as a Starlette app.

    POST /api/v1/events            one event        {"event": {...}}
    POST /api/v1/events/batch      all-or-nothing   {"events": [...]}
    GET  /api/v1/events/{transaction_id}
    GET  /api/v1/events            ?code=&external_subscription_id=&timestamp_from=&timestamp_to=&page=&per_page=
    GET  /healthz                  no auth
    GET  /metrics                  Prometheus text, no auth

Auth is ``Authorization: Bearer <key>`` (``gpubill keys create``): 401 for a
missing or unknown key, 403 when a reader key posts. Bodies over the limit get
413. Every request that carries an event we cannot accept (malformed JSON,
invalid UTF-8, a missing root, an invalid event) is answered 4xx and its raw
payload is kept in quarantine. An event is acknowledged (200) only after its
transaction has committed.
"""

from __future__ import annotations

import time

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gpubill.store import Store
from gpubill.store.receipt import ABORTED, CONFLICT, DUPLICATE, INGESTED, REJECTED
from gpubill.store.validate import Unparsable

from . import lago
from .metrics import Metrics

DEFAULT_BATCH_LIMIT = 10_000
DEFAULT_MAX_BODY = 32 * 1024 * 1024


class _TooLarge(Exception):
    pass


class Api:
    def __init__(self, store: Store, *, batch_limit: int = DEFAULT_BATCH_LIMIT,
                 max_body: int = DEFAULT_MAX_BODY):
        self.store = store
        self.batch_limit = batch_limit
        self.max_body = max_body
        self.metrics = Metrics()
        self._keys: dict[str, tuple[str | None, float]] = {}

    # -- plumbing ----------------------------------------------------------
    def _role(self, request: Request) -> str | None:
        h = request.headers.get("authorization", "")
        if not h[:7].lower() == "bearer ":
            return None
        key = h[7:].strip()
        hit = self._keys.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        role = self.store.verify_key(key)
        if len(self._keys) > 1000:
            self._keys.clear()
        self._keys[key] = (role, now + 5.0)  # revocation takes effect within 5 s
        return role

    async def _body(self, request: Request) -> bytes:
        n = request.headers.get("content-length")
        if n is not None and n.isdigit() and int(n) > self.max_body:
            raise _TooLarge
        chunks, size = [], 0
        async for c in request.stream():
            size += len(c)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(c)
        return b"".join(chunks)

    def _timed(self, route: str, handler, write: bool):
        async def endpoint(request: Request):
            t0 = time.perf_counter()
            if write is not None:
                role = await run_in_threadpool(self._role, request)
                if role is None:
                    resp = lago.unauthorized()
                elif write and role != "writer":
                    resp = lago.forbidden()
                else:
                    try:
                        resp = await handler(request)
                    except _TooLarge:
                        resp = lago.error(413, "Payload Too Large", "request_too_large",
                                          {"body": [f"larger than {self.max_body} bytes"]})
            else:
                resp = await handler(request)
            self.metrics.observe(route, resp.status_code, time.perf_counter() - t0)
            return resp
        return endpoint

    def _quarantine(self, raw: bytes, message: str):
        rec = self.store.ingest([Unparsable(message)], raws=[raw], source="http")
        self.metrics.count_events(rec.counts())
        return rec

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
        return await run_in_threadpool(self._create, body)

    def _create(self, body: bytes):
        doc, err = self._parse(body, "event")
        if err:
            return err
        rec = self.store.ingest([doc["event"]], source="http")
        self.metrics.count_events(rec.counts())
        st = int(rec.status[0])
        if st == REJECTED:
            return lago.validation(lago.problems_details(rec.problems[0]))
        if st == CONFLICT:
            return lago.validation({"transaction_id": ["value_already_exist"]})
        r = self.store.get_event(int(rec.event_id[0]))
        return lago.JSONResponse({"event": lago.from_record(r)})

    async def batch(self, request: Request):
        body = await self._body(request)
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
        rec = self.store.ingest(events, source="http-batch", atomic=True)
        self.metrics.count_events(rec.counts())
        if not rec.ok:
            details: dict = {}
            for i, problems in rec.problems.items():
                details[str(i)] = lago.problems_details(problems)
            for i in rec.conflict_id:
                details[str(i)] = {"transaction_id": ["value_already_exist"]}
            return lago.validation(dict(sorted(details.items(), key=lambda kv: int(kv[0]))))
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
        return lago.JSONResponse({"events": out})

    async def show(self, request: Request):
        txn = request.path_params["transaction_id"]
        sub = request.query_params.get("external_subscription_id")
        rows = await run_in_threadpool(self.store.get_events, txn, sub)
        if not rows:
            return lago.error(404, "Not Found", "event_not_found")
        return lago.JSONResponse({"event": lago.from_record(rows[0])})

    async def index(self, request: Request):
        q = request.query_params
        try:
            page = max(1, int(q.get("page", 1)))
            per_page = min(1000, max(1, int(q.get("per_page", 100))))
        except ValueError:
            return lago.bad_request("page and per_page must be integers")
        filters = {"code": q.get("code"), "sub": q.get("external_subscription_id")}
        for name, key in (("time_from_ms", "timestamp_from"), ("time_to_ms", "timestamp_to")):
            v = q.get(key)
            if v is not None:
                from gpubill.store.validate import parse_timestamp
                ms, problem = parse_timestamp(v, 0)
                if problem:
                    return lago.validation({key: ["invalid_format"]})
                filters[name] = ms

        def work():
            total = self.store.count_events(**filters)
            rows = self.store.list_events(**filters, limit=per_page, offset=(page - 1) * per_page)
            return total, rows
        total, rows = await run_in_threadpool(work)
        pages = (total + per_page - 1) // per_page
        meta = {"current_page": page, "next_page": page + 1 if page < pages else None,
                "prev_page": page - 1 if page > 1 else None, "total_pages": pages, "total_count": total}
        return lago.JSONResponse({"events": [lago.from_record(r) for r in rows], "meta": meta})

    async def healthz(self, request: Request):
        return lago.JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request):
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(store: Store, **options) -> Starlette:
    """The ASGI app over an open store (the caller closes the store)."""
    api = Api(store, **options)
    routes = [
        Route("/api/v1/events", api._timed("create", api.create, True), methods=["POST"]),
        Route("/api/v1/events/batch", api._timed("batch", api.batch, True), methods=["POST"]),
        Route("/api/v1/events", api._timed("index", api.index, False), methods=["GET"]),
        Route("/api/v1/events/{transaction_id:path}", api._timed("show", api.show, False), methods=["GET"]),
        Route("/healthz", api._timed("healthz", api.healthz, None), methods=["GET"]),
        Route("/metrics", api._timed("metrics", api.metrics_text, None), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed,
                                                       500: _server_error})
    app.state.api = api
    return app


async def _not_found(request, exc):
    return lago.error(404, "Not Found")


async def _not_allowed(request, exc):
    return lago.error(405, "Method Not Allowed")


async def _server_error(request, exc):
    return lago.error(500, "Internal Server Error")
