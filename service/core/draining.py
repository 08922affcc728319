"""Graceful shutdown: /readyz answers 503 from the first SIGTERM while the requests in flight drain.

uvicorn stops listening as soon as it is signalled, so a load balancer would only learn of the
shutdown from refused connections. Instead the app wraps the server's signal handler (in the
worker's lifespan): the first SIGTERM or SIGINT marks the app as shutting down (readiness 503)
while it keeps serving, and hands the signal on to uvicorn once every request that was in flight
at that moment has been answered, or after `deadline_s`. With nothing in flight that is at once.
A second signal goes straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """Requests in flight, and whether shutdown has started (one per app)."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.started = False
        self.in_flight: set[int] = set()
        self._waiting: set[int] = set()
        self._drained: asyncio.Event | None = None
        self._hand_on_task: asyncio.Task[None] | None = None

    def request_done(self, token: int) -> None:
        """Called by the middleware as each request ends."""
        self.in_flight.discard(token)
        if self._drained is not None and token in self._waiting:
            self._waiting.discard(token)
            if not self._waiting:
                self._drained.set()

    def install(self) -> None:
        """Wrap the server's handlers of SIGTERM and SIGINT (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, partial(self._on_signal, loop, previous))

    def _on_signal(
        self,
        loop: asyncio.AbstractEventLoop,
        previous: Callable[[int, FrameType | None], Any],
        sig: int,
        frame: FrameType | None,
    ) -> None:
        if self.started:
            previous(sig, frame)
            return
        self.started = True
        self._waiting = set(self.in_flight)
        self._drained = asyncio.Event()
        if not self._waiting:
            self._drained.set()
        loop.call_soon_threadsafe(self._start_hand_on, loop, previous, sig)

    def _start_hand_on(
        self,
        loop: asyncio.AbstractEventLoop,
        previous: Callable[[int, FrameType | None], Any],
        sig: int,
    ) -> None:
        # Kept on self: the loop holds only a weak reference to a task.
        self._hand_on_task = loop.create_task(self._hand_on(previous, sig))

    async def _hand_on(self, previous: Callable[[int, FrameType | None], Any], sig: int) -> None:
        assert self._drained is not None  # noqa: S101 - set before this task is created
        # Past the deadline, uvicorn's own graceful timeout applies to what is left.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout=self.deadline_s)
        previous(sig, None)
