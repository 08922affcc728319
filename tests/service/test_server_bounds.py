"""The server's bounds against slow, idle and greedy clients, on raw loopback sockets.

Real `python -m service` processes with short bounds (1 s for headers, bodies and idle
keep-alive), so each test waits for the server to act, never for a fixed time: a read blocks
until the server answers or closes, within a deadline.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import LiveServer, run_service

pytestmark = [pytest.mark.e2e]

SHORT_S = 1.0
MAX_CONNECTIONS = 64
DEADLINE_S = 20.0
MAX_HEADER_BYTES = 16_384  # the default


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveServer]:
    """A server with 1 s bounds for headers, bodies and idle keep-alive, 64 connections."""
    log_path = tmp_path_factory.mktemp("bounded") / "service.log"
    with run_service(
        log_path,
        model_dir,
        PREDICT_BUY_HEADER_TIMEOUT_S=str(SHORT_S),
        PREDICT_BUY_BODY_TIMEOUT_S=str(SHORT_S),
        PREDICT_BUY_KEEP_ALIVE_S=str(SHORT_S),
        PREDICT_BUY_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    ) as live:
        yield live


def _address(server: LiveServer) -> tuple[str, int]:
    return "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(_address(server), timeout=DEADLINE_S)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after the deadline)."""
    received = b""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65_536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server did not close the connection within {DEADLINE_S} s: {received!r}")


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def test_headers_over_the_limit_get_431(bounded: LiveServer) -> None:
    # given one huge header, and many small ones, both over 16 KiB
    big = b"X-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n"
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 30) for i in range(1_000))
    for headers in (big, many):
        with _connect(bounded) as sock:
            # when sent
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
            answer = _read_until_closed(sock)
        # then 431, and the connection is closed
        assert _status(answer) == 431, answer[:200]
        assert b"larger than 16,384 bytes" in answer


def test_a_64_mb_header_is_cut_off_early(bounded: LiveServer) -> None:
    # given a client that goes on sending one header up to 64 MB
    sent = 0
    with _connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        chunk = b"a" * 65_536
        try:
            while sent < 64 * 1024 * 1024:
                sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    # then the server closed on it long before (only kernel buffers took the rest)
    assert sent < 16 * 1024 * 1024, f"the server read {sent:,} bytes of one header"


def test_headers_sent_too_slowly_get_408(bounded: LiveServer) -> None:
    for partial in (b"", b"GET /healthz HTTP/1.1\r\nHost: t\r\n"):
        # given a connection that sends nothing, or a request line and then waits
        with _connect(bounded) as sock:
            sock.sendall(partial)
            # when the header deadline passes / then 408, and the connection is closed
            answer = _read_until_closed(sock)
        assert _status(answer) == 408, answer
        assert b"request headers not received within 1 s" in answer


def test_a_body_sent_too_slowly_gets_408_and_is_logged_so(bounded: LiveServer) -> None:
    # given a request whose body stops after a few bytes
    with _connect(bounded) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nX-Request-ID: slow-body\r\n"
            b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"Gender"'
        )
        answer = _read_until_closed(sock)
    # then 408 on the wire, and the access line records it (not a 500 or a disconnect)
    assert _status(answer) == 408, answer
    records = bounded.wait_for_log("slow-body")
    access = [
        r for r in records if r["request_id"] == "slow-body" and r["logger"] == "service.access"
    ]
    assert access[0]["status"] == 408, access


def test_an_idle_keep_alive_connection_is_closed(bounded: LiveServer) -> None:
    # given a connection that made one request and keeps the connection open
    with _connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        # when it stays idle / then the answer comes, then the server closes the connection
        answer = _read_until_closed(sock)
    assert _status(answer) == 200
    assert answer.endswith(b'{"status":"ok"}'), "nothing may follow the answer before the close"


def test_slowloris_connections_are_all_closed_and_service_resumes(bounded: LiveServer) -> None:
    # given 100 connections, each sending a partial request and then nothing
    connections = []
    for _ in range(100):
        sock = _connect(bounded)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Le")
        connections.append(sock)
    # when their deadlines pass / then every one is answered 408 (or 503 past 64) and closed
    answers = {sock: b"" for sock in connections}
    open_ones = set(connections)
    with selectors.DefaultSelector() as selector:
        for sock in connections:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + DEADLINE_S
        while open_ones and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65_536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    answers[sock] += chunk
                else:
                    selector.unregister(sock)
                    open_ones.discard(sock)
    for sock in connections:
        sock.close()
    assert not open_ones, f"{len(open_ones)} slow connections still open after {DEADLINE_S} s"
    statuses = [_status(answer) for answer in answers.values()]
    assert set(statuses) <= {408, 503}, statuses
    assert statuses.count(408) <= MAX_CONNECTIONS, "more connections held than the bound"
    assert statuses.count(503) >= 100 - MAX_CONNECTIONS
    # and a normal client is served again (once the server has dropped them)
    deadline = time.monotonic() + DEADLINE_S
    while httpx.get(f"{bounded.base_url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the service did not resume"


def test_connections_over_the_limit_get_503(tmp_path: Path, model_dir: Path) -> None:
    # given a server bounded to 4 connections, with 4 idle keep-alive clients holding them
    with run_service(tmp_path / "service.log", model_dir, PREDICT_BUY_MAX_CONNECTIONS="4") as live:
        held = [httpx.Client(base_url=live.base_url, timeout=10) for _ in range(4)]
        try:
            for http in held:
                assert http.get("/healthz").status_code == 200
            # when a fifth connects / then it is answered 503 at once and closed
            with _connect(live) as sock:
                answer = _read_until_closed(sock)
            assert _status(answer) == 503, answer
            assert b"holds 4 connections" in answer
            # and once one client leaves, a new one is served (when the server notices)
            held.pop().close()
            deadline = time.monotonic() + DEADLINE_S
            while True:
                with _connect(live) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if _status(_read_until_closed(sock)) == 200:
                        break
                assert time.monotonic() < deadline, "a freed connection slot was not reused"
        finally:
            for http in held:
                http.close()
