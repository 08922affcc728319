"""Graceful shutdown: /readyz says 503 from the first SIGTERM while requests in flight finish."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from service.schemas import ORIGINAL_SAMPLE
from tests.service.conftest import run_service

pytestmark = [pytest.mark.e2e]

DEADLINE_S = 20.0


def _in_flight(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    match = re.search(r"^predict_buy_http_requests_in_flight ([0-9.]+)$", text, re.MULTILINE)
    assert match, "the in-flight gauge is missing"
    return float(match.group(1))


def _wait(condition_met: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition_met():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE_S} s"
        time.sleep(0.05)  # poll interval; bounded by the deadline


def test_readiness_fails_at_once_while_requests_in_flight_drain(
    tmp_path: Path, model_dir: Path
) -> None:
    body = orjson.dumps(ORIGINAL_SAMPLE)
    with run_service(tmp_path / "service.log", model_dir) as live:
        port = int(live.base_url.rsplit(":", 1)[1])
        # given a request in flight: its headers and half its body sent
        slow = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        slow.sendall(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        # (the gauge counts it, and the scrape asking)
        _wait(lambda: _in_flight(live.base_url) >= 2, "the slow request was not in flight")
        # when the service is told to stop
        live.process.send_signal(signal.SIGTERM)
        # then readiness fails at once, while other requests are still answered
        _wait(
            lambda: httpx.get(f"{live.base_url}/readyz", timeout=5).status_code == 503,
            "/readyz did not answer 503",
        )
        ready = httpx.get(f"{live.base_url}/readyz", timeout=5).json()
        assert ready == {"status": "not ready", "model_version": None, "detail": "shutting down"}
        assert httpx.post(f"{live.base_url}/predict", json=ORIGINAL_SAMPLE).status_code == 200
        assert live.process.poll() is None, "the service stopped before its request drained"
        # and the request in flight gets its answer, after which the service stops
        slow.sendall(body[10:])
        answer = b""
        while b'"model_version"' not in answer:
            chunk = slow.recv(65_536)
            assert chunk, f"the connection closed before the answer: {answer!r}"
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        try:
            live.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail("the service did not stop once its requests had drained")
