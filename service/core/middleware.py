"""Per-request plumbing as one pure ASGI middleware: request id, body limits, metrics, access log.

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
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.draining import Drain
from service.core.logging import AccessLog, request_id_var
from service.core.metrics import ServiceMetrics
from service.core.server import BODY_TIMED_OUT

REQUEST_ID_HEADER: Final = "X-Request-ID"
_REQUEST_ID_KEY: Final = REQUEST_ID_HEADER.lower().encode()
_CONTENT_LENGTH_KEY: Final = b"content-length"
_CONTENT_ENCODING_KEY: Final = b"content-encoding"
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_NO_STORE: Final = (b"cache-control", b"no-store")
# nginx's code for "the client closed the connection before the answer": never sent, only counted.
CLIENT_CLOSED_REQUEST: Final = 499
_ENCODED_DETAIL: Final = (
    "Content-Encoding is not supported: send the JSON body uncompressed (identity)"
)
_INTERNAL_DETAIL: Final = "internal error; the service log has it under this request_id"
# A caller's id is reused (so a request can be followed across services) when it is harmless.
_SAFE_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE: Final = "unmatched"

# Our own ids: a random per-process prefix and a counter (unique across workers, ~0.2 µs).
_ID_PREFIX: Final = os.urandom(6).hex()
_id_counter = itertools.count(1)
_flight_counter = itertools.count(1)
_errors = logging.getLogger("service.errors")


class BodyTooLarge(Exception):
    """The request body is over the limit of its path (answered with 413)."""


class RequestObservabilityMiddleware:
    """Request id (X-Request-ID), body limits (413, 415), HEAD, security headers, 500s and
    client disconnects, metrics and the access line."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        access_log: AccessLog,
        drain: Drain,
        max_body_bytes: int,
        max_body_bytes_by_path: Mapping[str, int],
        paths: frozenset[str],
        no_store_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.drain = drain
        self.max_body_bytes = max_body_bytes
        self.max_body_bytes_by_path = dict(max_body_bytes_by_path)
        # Routes answered here, before routing (413), are labelled by path when it is a route.
        self.paths = paths
        # Answers on these paths (predictions: personal data) must never be stored by a cache.
        self.no_store_paths = no_store_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, content_length, encoded = _read_headers(scope)
        extra_headers = [(_REQUEST_ID_KEY, request_id.encode()), _NOSNIFF]
        if scope["path"] in self.no_store_paths:
            extra_headers.append(_NO_STORE)
        token = request_id_var.set(request_id)
        flight = next(_flight_counter)
        self.drain.in_flight.add(flight)
        limit = self.max_body_bytes_by_path.get(scope["path"], self.max_body_bytes)
        # HEAD is GET without the body: the app routes it as GET, the server drops the body
        # (uvicorn reads the method from its own scope, which stays HEAD).
        app_scope = {**scope, "method": "GET"} if scope["method"] == "HEAD" else scope
        status = 500  # what the client gets if the app fails before answering
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            if encoded and scope["method"] in ("POST", "PUT", "PATCH"):
                await _refuse(scope, 415, _ENCODED_DETAIL, send_with_headers)
            elif content_length is not None and content_length > limit:
                await _too_large(scope, limit, send_with_headers)
            elif content_length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                await self.app(app_scope, _counting(receive, limit), send_with_headers)
            else:
                await self.app(app_scope, receive, send_with_headers)
        except BodyTooLarge:
            if response_started:
                raise
            await _too_large(scope, limit, send_with_headers)
        except ClientDisconnect:
            # Not a server error: the client went away (or sent its body too slowly: 408).
            status = 408 if scope.get(BODY_TIMED_OUT) else CLIENT_CLOSED_REQUEST
            self.metrics.count_client_disconnect()
            _errors.info(
                "client disconnected", extra={"route": self._label(scope), "status": status}
            )
        except Exception as error:
            _errors.error("unexpected error", exc_info=error, extra={"route": self._label(scope)})
            if not response_started:
                await _refuse(
                    scope, 500, _INTERNAL_DETAIL, send_with_headers, {"request_id": request_id}
                )
        finally:
            seconds = time.perf_counter() - started
            route = getattr(app_scope.get("route"), "path", None) or self._label(scope)
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
            self.drain.request_done(flight)
            request_id_var.reset(token)

    def _label(self, scope: Scope) -> str:
        # A path that is no route is client input: logged and counted as one label, not verbatim.
        return scope["path"] if scope["path"] in self.paths else UNMATCHED_ROUTE


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


def _read_headers(scope: Scope) -> tuple[str, int | None, bool]:
    """The request id to use, the declared body length (None if absent or unreadable) and
    whether the body is content-encoded (gzip, ...), in one pass over the headers."""
    request_id = None
    content_length = None
    encoded = False
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_KEY and request_id is None and _SAFE_REQUEST_ID.fullmatch(value):
            request_id = value.decode()
        elif name == _CONTENT_LENGTH_KEY:
            try:
                content_length = int(value)
            except ValueError:
                content_length = None
        elif name == _CONTENT_ENCODING_KEY and value.strip().lower() != b"identity":
            encoded = True
    if request_id is None:
        request_id = f"{_ID_PREFIX}-{next(_id_counter):08x}"
    return request_id, content_length, encoded


async def _too_large(scope: Scope, limit: int, send: Send) -> None:
    detail = (
        f"request body too large: {scope['method']} {scope['path']} accepts at most {limit:,} bytes"
    )
    _errors.info(
        "request rejected", extra={"route": scope["path"], "error_types": ["body_too_large"]}
    )
    await _refuse(scope, 413, detail, send)


async def _refuse(
    scope: Scope, status: int, detail: str, send: Send, extra: dict[str, str] | None = None
) -> None:
    """Answer `status` with {"detail": ...} and close the connection (the body is unread)."""
    body = orjson.dumps({"detail": detail, **(extra or {})})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
