"""Per-request plumbing as one pure ASGI middleware: request id, body limit, metrics, access log.

Pure ASGI (not Starlette's BaseHTTPMiddleware) and one layer, because it runs on every request and
must cost microseconds: no extra task, no request object, no body buffering, one pass over the
headers for both the request id and the body size.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.logging import AccessLog, request_id_var
from service.core.metrics import ServiceMetrics

REQUEST_ID_HEADER: Final = "X-Request-ID"
_REQUEST_ID_KEY: Final = REQUEST_ID_HEADER.lower().encode()
_CONTENT_LENGTH_KEY: Final = b"content-length"
# A caller's id is reused (so a request can be followed across services) when it is harmless.
_SAFE_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE: Final = "unmatched"

# Our own ids: a random per-process prefix and a counter (unique across workers, ~0.2 µs).
_ID_PREFIX: Final = os.urandom(6).hex()
_id_counter = itertools.count(1)


class BodyTooLarge(Exception):
    """The request body is over the limit of its path (answered with 413)."""


class RequestObservabilityMiddleware:
    """Request id (X-Request-ID), body-size limit (413), metrics and the access line."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        access_log: AccessLog,
        max_body_bytes: int,
        max_body_bytes_by_path: Mapping[str, int],
        paths: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes
        self.max_body_bytes_by_path = dict(max_body_bytes_by_path)
        # Routes answered here, before routing (413), are labelled by path when it is a route.
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, content_length = _read_headers(scope)
        header = (_REQUEST_ID_KEY, request_id.encode())
        token = request_id_var.set(request_id)
        limit = self.max_body_bytes_by_path.get(scope["path"], self.max_body_bytes)
        status = 500  # what the client gets if the app fails before answering
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            if content_length is not None and content_length > limit:
                await _too_large(scope, limit, send_with_id)
            elif content_length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                await self.app(scope, _counting(receive, limit), send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except BodyTooLarge:
            if response_started:
                raise
            await _too_large(scope, limit, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] in self.paths else UNMATCHED_ROUTE
            )
            self.metrics.observe_request(scope["method"], route, status, seconds)
            self.access_log.write(
                logging.ERROR if status >= 500 else logging.INFO,
                {
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
            request_id_var.reset(token)


def _counting(receive: Receive, limit: int) -> Receive:
    """A receive that counts a body sent without Content-Length (chunked) as it arrives."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    return receive_within_limit


def _read_headers(scope: Scope) -> tuple[str, int | None]:
    """The request id to use and the declared body length (None if absent or unreadable)."""
    request_id = None
    content_length = None
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_KEY and request_id is None and _SAFE_REQUEST_ID.fullmatch(value):
            request_id = value.decode()
        elif name == _CONTENT_LENGTH_KEY:
            try:
                content_length = int(value)
            except ValueError:
                content_length = None
    if request_id is None:
        request_id = f"{_ID_PREFIX}-{next(_id_counter):08x}"
    return request_id, content_length


async def _too_large(scope: Scope, limit: int, send: Send) -> None:
    detail = (
        f"request body too large: {scope['method']} {scope['path']} accepts at most {limit:,} bytes"
    )
    body = orjson.dumps({"detail": detail})
    logging.getLogger("service.errors").info(
        "request rejected", extra={"route": scope["path"], "error_types": ["body_too_large"]}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
