"""Estimates over HTTP: ``POST /api/v1/estimate`` and Lago's ``POST /api/v1/events/estimate_fees``.

    POST /api/v1/estimate  {"contract" | "external_subscription_id", "gpu_type", "gpu_count", "hours",
                            "region"?, "availability_class"?, "utilization"?, "at"?}
        -> the JSON of `gpubill estimate --format json` (docs/cli.md)
    POST /api/v1/events/estimate_fees  {"event": {"code", "external_subscription_id", "properties",
                                                  "precise_total_amount_cents"?, "timestamp"?}}
        -> {"fees": [Lago fee objects: what the event would add to the period's invoice]}

Any valid API key may estimate (it reads). The contracts are the ``.bill``
files of ``gpubill serve --contracts DIR`` (else ``$GPUBILL_CONTRACTS``, paths
separated by ``os.pathsep``: ``create_app`` decides), loaded and checked on
the first estimate; without them both calls answer 503. Nothing is written to the store. Errors in Lago's envelope: 400 for a
body that is not a JSON object, 404 ``subscription_not_found`` /
``billable_metric_not_found``, 422 ``validation_errors`` with the one-line
reason under ``error_details``.
"""

from __future__ import annotations

import threading
from decimal import Decimal, InvalidOperation

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gpubill.lago import events_api as lago
from gpubill.service.estimate import Estimator, Job, NotFound, estimate_json, lago_fees
from gpubill.service.events import parse_timestamp
from gpubill.service.rating import ServiceError

CONTRACTS_ENV = "GPUBILL_CONTRACTS"


class _Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class EstimateApi:
    """The two estimate endpoints over one ``Estimator`` (its baselines kept between calls)."""

    def __init__(self, api, contract_paths: list[str]):
        self.api = api
        self.paths = list(contract_paths)
        self._estimator: Estimator | None = None
        self._lock = threading.Lock()  # one estimate at a time: the baselines are shared

    async def estimate(self, request: Request):
        body = await self.api._body(request)
        return await run_in_threadpool(self._answer, body, self._estimate)

    async def estimate_fees(self, request: Request):
        body = await self.api._body(request)
        return await run_in_threadpool(self._answer, body, self._estimate_fees)

    def _answer(self, body: bytes, fn):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return lago.bad_request(f"malformed JSON: {e}")
        if not isinstance(doc, dict):
            return lago.bad_request("the body must be a JSON object")
        if not self.paths:
            return lago.error(503, "Service Unavailable: no contracts to estimate with; start gpubill serve with "
                                   f"--contracts DIR (or {CONTRACTS_ENV}=DIR)", "contracts_not_loaded")
        try:
            with self._lock:
                return lago.JSONResponse(self.api._read(fn, doc))
        except _Invalid as e:
            return lago.validation({e.field: [str(e)]})
        except NotFound as e:
            return lago.error(404, "Not Found", f"{e.what}_not_found", {e.what: [str(e)]})
        except ServiceError as e:
            return lago.validation({"estimate": [str(e)]})

    def _loaded(self) -> Estimator:
        if self._estimator is None:
            self._estimator = Estimator(self.api.store, self.paths)
        return self._estimator

    def _estimate(self, doc: dict) -> dict:
        key = doc.get("contract") or doc.get("external_subscription_id")
        if not isinstance(key, str) or not key:
            raise _Invalid("contract", "contract or external_subscription_id is required")
        job = Job(_text(doc, "gpu_type"), _number(doc, "gpu_count"), _number(doc, "hours"),
                  _text(doc, "region", None), _text(doc, "availability_class", None),
                  _number(doc, "utilization", Decimal(1)))
        return estimate_json(self._loaded().estimate(key, job, _at(doc.get("at"), "at")))

    def _estimate_fees(self, doc: dict) -> dict:
        event = doc.get("event")
        if not isinstance(event, dict):
            raise _Invalid("event", "param is missing or the value is empty: event")
        sub = _text(event, "external_subscription_id")
        _text(event, "code")
        if not isinstance(event.get("properties") or {}, dict):
            raise _Invalid("properties", "properties must be an object")
        e = self._loaded().estimate_event(sub, event, _at(event.get("timestamp"), "timestamp"))
        return {"fees": lago_fees(e)}


def _text(doc: dict, name: str, default=...):
    v = doc.get(name)
    if v is None and default is not ...:
        return default
    if not isinstance(v, str) or not v:
        raise _Invalid(name, f"{name} must be a non-empty string")
    return v


def _number(doc: dict, name: str, default=None) -> Decimal:
    v = doc.get(name)
    if v is None and default is not None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _Invalid(name, f"{name} must be a number")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise _Invalid(name, f"{name} must be a number, got {v!r}") from None
    if not d.is_finite():
        raise _Invalid(name, f"{name} must be a finite number")
    return d


def _at(v, name: str) -> int | None:
    if v is None:
        return None
    ms, problem = parse_timestamp(v, 0)
    if problem:
        raise _Invalid(name, problem.message)
    return ms
