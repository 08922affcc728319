"""Service fixtures: a hand-made model directory and real uvicorn servers on free loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.service.model_factory import write_model_dir

START_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running `python -m service` (or another command serving the app)."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if line.strip()]

    def log_records(self) -> list[dict[str, object]]:
        """Every log line parsed as JSON (fails the test on a line that is not JSON)."""
        records = []
        for line in self.log_lines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"log line is not JSON: {line!r}")
        return records

    def wait_for_log(self, request_id: str, deadline_s: float = 5.0) -> list[dict[str, object]]:
        """The log once the access line of `request_id` is in it (written after the response)."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            records = self.log_records()
            if any(
                r.get("request_id") == request_id and r.get("logger") == "service.access"
                for r in records
            ):
                return records
            time.sleep(0.02)  # poll interval; bounded by the deadline
        pytest.fail(f"no access line for request {request_id} within {deadline_s} s")


def service_env(model_dir: Path, port: int, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREDICT_BUY_", "PROMETHEUS_MULTIPROC")) and key != "WEB_CONCURRENCY"
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        PREDICT_BUY_MODEL_DIR=str(model_dir),
        PREDICT_BUY_HOST="127.0.0.1",
        PREDICT_BUY_PORT=str(port),
        PREDICT_BUY_WORKERS="1",
    )
    env.update(overrides)
    return env


def wait_until_serving(server: LiveServer, deadline_s: float = START_DEADLINE_S) -> None:
    """Poll /healthz until it answers 200; fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"server exited with {server.process.returncode} before serving:\n"
                + server.log_path.read_text()
            )
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # poll interval while the port opens; bounded by the deadline
    pytest.fail(
        f"server did not answer /healthz within {deadline_s} s:\n{server.log_path.read_text()}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def run_service(
    log_path: Path,
    model_dir: Path,
    command: list[str] | None = None,
    cwd: Path = REPO_ROOT,
    **env_overrides: str,
) -> Iterator[LiveServer]:
    """Start the service (default: `python -m service`) on a free port; stop it afterwards."""
    port = free_port()
    env = service_env(model_dir, port, **env_overrides)
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            command or [sys.executable, "-m", "service"],
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_serving(server)
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory as the pipeline writes it: model.npz + model.json (right sha256)."""
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveServer]:
    """One `python -m service` for the whole session, serving the fixture model."""
    log_path = tmp_path_factory.mktemp("server") / "service.log"
    with run_service(log_path, model_dir) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        yield http
