"""Exception handlers: every rejection is a 4xx JSON answer naming the field and what is allowed.

Bad input never reaches the model: pydantic rejects it, and these handlers turn pydantic's errors
into one message per field ("rows[3].Age: out of range (got 150); allowed: ..."), values quoted as
JSON. Whatever the input, a 422 stays small: it lists at most MAX_REPORTED_ERRORS items within
MAX_ERROR_BODY_BYTES, plus the total `error_count`, and a body with many errors has them described
in a worker thread, off the event loop. Only the names of contract fields and error types are
logged, never values (they are personal data) nor unknown field names (they are client input:
counted instead).

Exceptions raised here:

    BodyValidationError   a prediction body broke its request model (answered 422)
    PrebuiltRejection     a body refused by its shape alone, its 422 already built
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ml.contract import FEATURES_BY_NAME, ContractError
from service.schemas import MAX_BATCH_ROWS, PredictRequest, allowed_in_requests

logger = logging.getLogger("service.errors")

JSON: Final = "application/json"
_BODY_SHAPE: Final = "a JSON object"
# A 422 lists at most this many errors, and stops earlier to stay within the byte budget.
MAX_REPORTED_ERRORS: Final = 50
MAX_ERROR_BODY_BYTES: Final = 6 * 1024
# Errors up to this count are described on the event loop; more go to a worker thread.
INLINE_ERROR_LIMIT: Final = 50
# Names and values quoted in an answer are cut to this many characters.
MAX_QUOTED_CHARS: Final = 60
_LOGGED_FIELDS: Final = 20
_FIELDS: Final = frozenset(PredictRequest.model_fields)
_COLON: Final = ord(":")
_BRACE: Final = ord("{")

# Pydantic error types, in words (its own messages quote values the Python way).
_REASONS: Final = {
    "literal_error": "not one of the labels",
    "int_from_float": "not a whole number",
    "int_parsing": "not a number",
    "int_type": "not a number",
    "float_parsing": "not a number",
    "float_type": "not a number",
    "greater_than_equal": "out of range",
    "less_than_equal": "out of range",
    "finite_number": "not a finite number",
}


class BodyValidationError(Exception):
    """A prediction body broke its request model; the handler describes pydantic's errors."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(f"{error.error_count()} validation errors")
        self.error = error


class PrebuiltRejection(Exception):
    """A body refused before pydantic saw it (screen_batch); its 422 body is ready."""

    def __init__(self, body: bytes, summary: dict[str, Any]) -> None:
        super().__init__(f"{summary['error_count']} errors")
        self.body = body
        self.summary = summary


def json_response(
    payload: Any, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    """`payload` serialised by orjson as an application/json response."""
    return Response(
        orjson.dumps(payload), status_code=status_code, media_type=JSON, headers=headers
    )


def quote(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """A value as JSON, cut to `limit` characters (for messages)."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = orjson.dumps(str(value)).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut(part: str | int) -> str | int:
    if isinstance(part, str) and len(part) > MAX_QUOTED_CHARS:
        return part[: MAX_QUOTED_CHARS - 3] + "..."
    return part


def describe_error(error: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """One pydantic error as {loc, field, msg, type}, the message saying what is allowed."""
    loc = [_cut(part) for part in (*prefix, *error.get("loc", ())) if isinstance(part, str | int)]
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
        return f"{field}: {cause.reason} (got {quote(cause.value)})"
    reason = _REASONS.get(kind, text)
    return f"{field}: {reason} (got {quote(error.get('input'))}); allowed: {allowed}"


def _names() -> str:
    return ", ".join(PredictRequest.model_fields)


def build_rejection(errors: Iterable[dict[str, Any]], total: int) -> tuple[bytes, dict[str, Any]]:
    """The 422 body for `errors` (`total` of them) and what to log about them.

    Only the first errors are described: items repeat no (field, error type) pair, stop at
    MAX_REPORTED_ERRORS or the byte budget, and `error_count` says how many there were in all.
    The rest are only counted (unknown fields apart, for the log).
    """
    items: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    size = 64  # the envelope: {"detail":[],"error_count":N}
    unknown_fields = 0
    describing = True
    for error in errors:
        if error.get("type") == "extra_forbidden":
            unknown_fields += 1
        if not describing:
            continue
        item = describe_error(error)
        key = (item["field"], item["type"])
        if key in seen:
            continue
        encoded = len(orjson.dumps(item)) + 1
        if size + encoded > MAX_ERROR_BODY_BYTES:
            describing = False
            continue
        seen.add(key)
        items.append(item)
        size += encoded
        describing = len(items) < MAX_REPORTED_ERRORS
    body = orjson.dumps({"detail": items, "error_count": total})
    known = [item["field"] for item in items if item["type"] != "extra_forbidden"]
    summary = {
        "fields": list(dict.fromkeys(known))[:_LOGGED_FIELDS],
        "unknown_fields": unknown_fields,
        "error_count": total,
        "error_types": sorted({item["type"] for item in items}),
    }
    return body, summary


@dataclass(frozen=True, slots=True)
class BatchShape:
    """What a batch body's bytes alone say about it, in microseconds and before any parsing.

    `keys` counts the colons (every key is followed by one, whatever the spacing; a colon inside
    a text value only adds to the count) and `objects` the opening braces: upper bounds on the
    keys and rows that pydantic would see.
    """

    keys: int
    objects: int

    @classmethod
    def of(cls, raw: bytes) -> BatchShape:
        # numpy compares bytes several times faster than bytes.count counts one.
        view = np.frombuffer(raw, dtype=np.uint8)
        return cls(int(np.count_nonzero(view == _COLON)), int(np.count_nonzero(view == _BRACE)))

    @property
    def suspicious(self) -> bool:
        """Some object could have more keys than there are fields, or there are more objects
        than rows allowed: pydantic could report an error per key or row."""
        return self.keys > self.objects * len(_FIELDS) or self.objects > MAX_BATCH_ROWS + 1


def screen_batch(raw: bytes, shape: BatchShape | None = None) -> None:
    """Refuse a batch whose shape alone would make pydantic report an error per key or row.

    Pydantic builds every error it finds: 4 MB of unknown keys are 400,000 errors, seconds of CPU
    and hundreds of MB. The body's shape (two byte counts) tells whether some object has more keys
    than there are fields, or there are more objects than rows allowed; only then is the body
    parsed here to count the unknown keys and the rows, and refused with a bounded answer.
    Anything else is left to the request model.
    """
    if not (shape or BatchShape.of(raw)).suspicious:
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the request model says where the JSON breaks
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return
    if len(rows) > MAX_BATCH_ROWS:
        too_long = {
            "type": "too_long",
            "loc": ("body", "rows"),
            "msg": f"List should have at most {MAX_BATCH_ROWS} items, not {len(rows)}",
        }
        raise PrebuiltRejection(*build_rejection([too_long], 1))
    unknown = [
        (index, key)
        for index, row in enumerate(rows)
        if isinstance(row, dict)
        for key in row
        if key not in _FIELDS
    ]
    if unknown:
        errors = (
            {"type": "extra_forbidden", "loc": ("body", "rows", index, key)}
            for index, key in unknown
        )
        raise PrebuiltRejection(*build_rejection(errors, len(unknown)))


def _pydantic_rejection(error: ValidationError) -> tuple[bytes, dict[str, Any]]:
    errors = error.errors(include_url=False)
    return build_rejection(({**e, "loc": ("body", *e["loc"])} for e in errors), len(errors))


def _rejected(request: Request, body: bytes, summary: dict[str, Any]) -> Response:
    logger.info("request rejected", extra={"route": request.url.path, **summary})
    return Response(body, status_code=422, media_type=JSON)


async def body_validation_handler(request: Request, exc: Exception) -> Response:
    """422 for a prediction body; many errors are described in a worker thread."""
    assert isinstance(exc, BodyValidationError)  # noqa: S101 - registered for this type only
    if exc.error.error_count() <= INLINE_ERROR_LIMIT:
        body, summary = _pydantic_rejection(exc.error)
    else:
        body, summary = await run_in_threadpool(_pydantic_rejection, exc.error)
    return _rejected(request, body, summary)


async def prebuilt_rejection_handler(request: Request, exc: Exception) -> Response:
    """422 for a body screen_batch refused."""
    assert isinstance(exc, PrebuiltRejection)  # noqa: S101 - registered for this type only
    return _rejected(request, exc.body, exc.summary)


async def request_validation_handler(request: Request, exc: Exception) -> Response:
    """422 for inputs FastAPI validated itself (query parameters, other routes' bodies)."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    errors = list(exc.errors())
    if len(errors) <= INLINE_ERROR_LIMIT:
        body, summary = build_rejection(errors, len(errors))
    else:
        body, summary = await run_in_threadpool(build_rejection, errors, len(errors))
    return _rejected(request, body, summary)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """HTTP errors (404, 405) as {"detail": ...}."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    return json_response({"detail": exc.detail}, exc.status_code, headers=exc.headers)
