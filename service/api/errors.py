"""Exception handlers: every rejection is a 4xx JSON answer naming the field and what is allowed.

Bad input never reaches the model: pydantic rejects it, and these handlers turn pydantic's errors
into one message per field ("rows[3].Age: ... allowed: a whole number from 18 to 100 ..."). Only
field names and error types are logged, never the values (they are personal data).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ml.contract import FEATURES_BY_NAME, ContractError
from service.schemas import MAX_BATCH_ROWS, PredictRequest, allowed_in_requests

logger = logging.getLogger("service.errors")

JSON: Final = "application/json"
_BODY_SHAPE: Final = "a JSON object"


def json_response(
    payload: Any, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status_code, media_type=JSON, headers=headers
    )


def describe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as {loc, field, msg, type}, the message saying what is allowed."""
    loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
    path = loc[1:] if loc[:1] == ["body"] else loc
    field, feature = _field_of(path)
    kind = str(error.get("type", "value_error"))
    message = _message(kind, field, feature, error)
    return {"loc": loc, "field": field, "msg": message, "type": kind}


def _field_of(path: list[str | int]) -> tuple[str, str | None]:
    """The field in words ("rows[3].Age") and its feature; parts after a feature are dropped."""
    words: list[str] = []
    for part in path:
        if isinstance(part, int):
            words.append(f"[{part}]")
            continue
        words.append(part if not words else f".{part}")
        if part in FEATURES_BY_NAME:
            return "".join(words), part
    return "".join(words) or "body", None


def _message(kind: str, field: str, feature: str | None, error: dict[str, Any]) -> str:
    text = str(error.get("msg", "invalid value"))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "malformed")
        return f"body: not valid JSON ({reason}); expected {_BODY_SHAPE}"
    if kind == "extra_forbidden":
        return f"{field}: unknown field; the fields are {_names()}"
    if feature is None:
        if field == "body" and kind == "missing":
            return f"body: missing; expected {_BODY_SHAPE}"
        if field == "body" or field.endswith("]"):
            return f"{field}: {text}; expected {_BODY_SHAPE} with the fields {_names()}"
        if field == "rows":
            return f"rows: {text}; allowed: a list of 1 to {MAX_BATCH_ROWS:,} objects"
        return f"{field}: {text}"
    allowed = allowed_in_requests(FEATURES_BY_NAME[feature])
    if kind == "missing":
        return f"{field}: required (send null if unknown); allowed: {allowed}"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ContractError):
        return f"{field}: {cause.reason} (got {_short(cause.value)})"
    return f"{field}: {text} (got {_short(error.get('input'))}); allowed: {allowed}"


def _names() -> str:
    return ", ".join(PredictRequest.model_fields)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def request_validation_handler(request: Request, exc: Exception) -> Response:
    """422 with one item per wrong field."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    items = [describe_error(error) for error in exc.errors()]
    unique = list({(item["field"], item["type"]): item for item in items}.values())
    logger.info(
        "request rejected",
        extra={
            "route": request.url.path,
            "fields": [item["field"] for item in unique][:20],
            "error_types": sorted({item["type"] for item in unique}),
        },
    )
    return json_response({"detail": unique}, 422)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """HTTP errors (404, 405) as {"detail": ...}."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    return json_response({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """500 without internals; the log has the traceback under the request id."""
    logger.error("unexpected error", exc_info=exc, extra={"route": request.url.path})
    return json_response(
        {"detail": "internal error; the service log has it under X-Request-ID"}, 500
    )
