"""Real S3 over HTTP for tests: moto_server on a free loopback port, a proxy that injects faults.

`MotoServer` runs PyPI moto[server] as a child process and waits (polling, with a deadline) until
it answers. `FaultyProxy` sits between a client and moto and answers the next requests with an
error status, or cuts a response body off halfway, so retries and atomic writes are tested against
real failures on the wire instead of mocks.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Self

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
START_DEADLINE_SECONDS = 30.0
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's conventional dummy value, not a secret
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that would steer boto3 or DVC away from the test server or the dummy credentials.
AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment(config_dir: Path) -> dict[str, str]:
    """Variables for a child process (dvc, the CLI) that talks to the test server only."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES_TO_CLEAR}
    env.update(TEST_CREDENTIALS)
    env["AWS_CONFIG_FILE"] = str(config_dir / "aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(config_dir / "aws-credentials")
    return env


class MotoServer:
    """moto_server on 127.0.0.1:<free port>; `extra_env` configures it (e.g. IAM auth)."""

    def __init__(self, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self._extra_env = extra_env or {}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = {**os.environ, **self._extra_env}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"moto_server exited with {self._process.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if self._request("GET", "/moto-api/", timeout=1) == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)  # poll interval while the server starts, bounded by the deadline
        self.__exit__(None, None, None)
        raise RuntimeError(f"moto_server did not answer on {self.url} in {START_DEADLINE_SECONDS}s")

    def reset(self) -> None:
        """Forget every bucket and object: each test starts from an empty S3."""
        status = self._request("POST", "/moto-api/reset", timeout=10)
        assert status == 200, f"moto reset answered {status}"

    def _request(self, method: str, path: str, timeout: float) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


class FaultyProxy:
    """An HTTP proxy to an S3 endpoint that fails requests on demand.

    fail_next(n, status, code): the next n requests get `status` with an S3 error body `code`.
    cut_next(n): the next n GET responses send half their body, then the connection is closed.
    Everything else is forwarded unchanged; `log` records (method, path, what happened).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._failures: list[tuple[int, str]] = []
        self._cuts = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def fail_next(self, count: int, status: int = 503, code: str = "SlowDown") -> None:
        with self._lock:
            self._failures.extend([(status, code)] * count)

    def cut_next(self, count: int) -> None:
        with self._lock:
            self._cuts += count

    def outcomes(self, outcome: str) -> int:
        with self._lock:
            return sum(1 for _, _, what in self.log if what == outcome)

    def _next_fault(self, method: str) -> tuple[str, int, str]:
        with self._lock:
            if self._failures:
                status, code = self._failures.pop(0)
                return "failed", status, code
            if method == "GET" and self._cuts:
                self._cuts -= 1
                return "cut", 0, ""
        return "forwarded", 0, ""

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append((method, path, outcome))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            hop_by_hop: ClassVar = {"connection", "keep-alive", "transfer-encoding"}

            def log_message(self, format: str, *args: object) -> None:
                return

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outcome, status, code = proxy._next_fault(self.command)
                proxy._record(self.command, self.path, outcome)
                if outcome == "failed":
                    error = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>injected by FaultyProxy</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in self.hop_by_hop:
                            self.send_header(key, value)
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if outcome == "cut":
                        self.wfile.write(payload[: len(payload) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
