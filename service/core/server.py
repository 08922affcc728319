"""The HTTP server's bounds: header size (431), header and body time (408), connections (503).

uvicorn with httptools is the fastest server for this app, but it leaves some bounds open: a
request's headers may be any size (httptools buffers them), and neither headers nor a body have a
deadline, so a client that sends a few bytes now and then holds a connection, and its memory, for
ever. uvicorn's own options cover the rest: `timeout_keep_alive` closes idle keep-alive
connections and `limit_concurrency` answers 503 past a number of connections or requests.

`BoundedHttpToolsProtocol` is uvicorn's httptools protocol with the missing bounds added where
they belong, in the connection's byte handling, before any request reaches the app:

* headers (request line included) over `max_header_bytes`: 431, connection closed; counted as the
  bytes arrive, so a huge header never sits in memory;
* headers not complete `header_timeout_s` after the connection opened or the request began: 408;
* a body not complete `body_timeout_s` after its headers: 408 (the app sees a disconnect);
* a connection opened while the worker already holds `max_connections`: 503 at once, closed.

Those answers never reach the app, so they are not in the access log or the request metrics; each
is one log line on `service.server`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.core.config import ServerLimits

logger = logging.getLogger("service.server")

# The app reads this scope key: a body the server gave up waiting for is a 408, not a 499.
BODY_TIMED_OUT: Final = "predict_buy.body_timed_out"


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request that was answered already."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus header-size, header-time and body-time bounds."""

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._receiving_body = False
        self._refused = False

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"the server holds {self.limits.max_connections:,} connections")
            return
        self._arm(self.limits.header_timeout_s, self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if not self._receiving_body:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if not self._receiving_body and self._header_bytes > self.limits.max_header_bytes:
            self._refuse_large_headers()

    # -- parser callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a request after an idle keep-alive, or pipelined
            self._arm(self.limits.header_timeout_s, self._headers_timed_out)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse_large_headers()
            raise _Refused
        self._disarm()
        self._header_bytes = 0
        self._receiving_body = True
        self._arm(self.limits.body_timeout_s, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._receiving_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._disarm()
        self._receiving_body = False
        self._header_bytes = 0
        super().on_response_complete()

    # -- bounds ------------------------------------------------------------------------------
    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_timed_out(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request waits for the answer before it: wait again, bounded as ever.
            self._arm(self.limits.header_timeout_s, self._headers_timed_out)
            return
        self._refuse(408, f"request headers not received within {self.limits.header_timeout_s:g} s")

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            if not self.transport.is_closing():
                self.transport.close()
            return
        cycle.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        self._refuse(408, f"request body not received within {self.limits.body_timeout_s:g} s")

    def _refuse_large_headers(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"request headers larger than {limit:,} bytes")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` with a JSON reason and close, whatever the parser was doing."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        body = orjson.dumps({"detail": reason})
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join([*head, body]))
        self.transport.close()
        logger.info("connection refused", extra={"status": status, "reason": reason})
