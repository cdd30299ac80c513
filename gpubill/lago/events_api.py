"""Lago's events API on the wire: event objects, error envelopes, ids and timestamps.

The shapes `gpubill serve` answers with (`gpubill/server/app.py`), so that
Lago's own clients work unchanged. Pure: values in, JSON shapes out; what a
receipt's statuses mean stays with the server.
"""

from __future__ import annotations

import numpy as np
import orjson
from starlette.responses import Response

#: The error_details of an event whose transaction_id and subscription are stored with other content.
ALREADY_EXISTS = {"transaction_id": ["value_already_exist"]}


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


def too_busy(retry_after_s: int) -> JSONResponse:
    """429: the server sheds load; nothing of the request was stored, send it again after the wait."""
    resp = error(429, f"Too Many Requests: the event store's writer is behind; nothing was stored, "
                      f"retry after {retry_after_s} s", "too_many_requests")
    resp.headers["retry-after"] = str(retry_after_s)
    return resp


def bad_request(message: str) -> JSONResponse:
    return error(400, f"BadRequest: {message}")


def iso_ms(ts_ms) -> list[str]:
    """UTC ISO-8601 with milliseconds, vectorized."""
    a = np.asarray(ts_ms, np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(a, unit="ms").tolist()]


_HEX = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), np.uint16)


def lago_ids(key) -> list[str]:
    """UUID-shaped ids from the events' 128-bit dedup keys (stable, unique per event).

    Vectorized: the hex digits of all ids are laid out in one buffer, then sliced.
    """
    b = np.ascontiguousarray(np.asarray(key, np.int64).reshape(-1, 2)).astype(">u8").view(np.uint8)
    n = b.shape[0]
    h = _HEX[b.reshape(n, 16)].view(np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), np.uint8)
    for a, z, src in ((0, 8, 0), (9, 13, 8), (14, 18, 12), (19, 23, 16), (24, 36, 20)):
        out[:, a:z] = h[:, src:src + z - a]
    text = out.tobytes().decode()
    return [text[i:i + 36] for i in range(0, 36 * n, 36)]


def event_body(lid, txn, sub, code, ts_iso, props, ptac, created_iso) -> dict:
    return {"lago_id": lid, "transaction_id": txn, "lago_customer_id": None,
            "code": code, "timestamp": ts_iso,
            "precise_total_amount_cents": None if ptac is None else str(ptac),
            "properties": props, "lago_subscription_id": None,
            "external_subscription_id": sub, "created_at": created_iso}


def from_record(r) -> dict:
    ts, created = iso_ms([r.timestamp_ms, r.received_ms])
    return event_body(lago_ids([r.key])[0], r.transaction_id, r.external_subscription_id, r.code, ts, r.properties,
                      r.precise_total_amount_cents, created)


def batch_errors(rejected: dict, conflicts) -> dict:
    """A failed batch's error_details: each event refused for a reason of its own, by index.

    ``rejected`` maps an event's index to its problems, which name its fields;
    ``conflicts`` are the indexes of events whose transaction_id and subscription
    are stored with other content: they name ``transaction_id``. Valid events
    that were only aborted with the batch are not passed, so not listed.
    """
    details = {i: problems_details(p) for i, p in rejected.items()}
    details.update((i, ALREADY_EXISTS) for i in conflicts)
    return {str(i): details[i] for i in sorted(details)}


def problems_details(problems) -> dict:
    """Lago's error_details: {field: [code, ...]}."""
    out: dict = {}
    for p in problems:
        out.setdefault(p.field, []).append(p.code)
    return out
