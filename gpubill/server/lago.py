"""Lago's wire shapes: event objects, error envelopes, pagination meta."""

from __future__ import annotations

import uuid

import numpy as np
import orjson
from starlette.responses import Response

_NS = uuid.UUID("6f1d7a1e-4b0c-4f55-9a53-0b9c2f8d1e77")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, code: str | None = None, details=None) -> JSONResponse:
    body: dict = {"status": status, "error": message}
    if code is not None:
        body["code"] = code
    if details is not None:
        body["error_details"] = details
    return JSONResponse(body, status_code=status)


def unauthorized() -> JSONResponse:
    return error(401, "Unauthorized")


def forbidden() -> JSONResponse:
    return error(403, "Forbidden", "write_action_not_allowed_for_event")


def validation(details: dict) -> JSONResponse:
    return error(422, "Unprocessable Entity", "validation_errors", details)


def bad_request(message: str) -> JSONResponse:
    return error(400, f"BadRequest: {message}")


def iso_ms(ts_ms) -> list[str]:
    """UTC ISO-8601 with milliseconds, vectorized."""
    a = np.asarray(ts_ms, np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(a, unit="ms").tolist()]


def lago_id(sub: str, txn: str) -> str:
    return str(uuid.uuid5(_NS, sub + "\x1f" + txn))


def event_body(txn, sub, code, ts_iso, props, ptac, created_iso) -> dict:
    return {"lago_id": lago_id(sub, txn), "transaction_id": txn, "lago_customer_id": None,
            "code": code, "timestamp": ts_iso,
            "precise_total_amount_cents": None if ptac is None else str(ptac),
            "properties": props, "lago_subscription_id": None,
            "external_subscription_id": sub, "created_at": created_iso}


def from_record(r) -> dict:
    ts, created = iso_ms([r.timestamp_ms, r.received_ms])
    return event_body(r.transaction_id, r.external_subscription_id, r.code, ts, r.properties,
                      r.precise_total_amount_cents, created)


def problems_details(problems) -> dict:
    """Lago's error_details: {field: [code, ...]}."""
    out: dict = {}
    for p in problems:
        out.setdefault(p.field, []).append(p.code)
    return out
