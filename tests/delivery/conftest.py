"""Fixtures for the delivery scripts: scripts/*.py loaded as modules, a stand-in service."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (scripts/ is not a package: the workflows run the files)."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    assert spec and spec.loader, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@dataclass
class StubBehaviour:
    """How the stand-in service answers; tests change it to break one thing at a time."""

    not_ready_polls: int = 0
    health_status: int = 200
    predict_status: int = 200
    predict_body: Any = field(default_factory=lambda: {"predicted_class": 1})
    readyz_calls: int = 0
    predictions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StubService:
    url: str
    port: int
    behaviour: StubBehaviour


def _handler(behaviour: StubBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/readyz":
                behaviour.readyz_calls += 1
                ready = behaviour.readyz_calls > behaviour.not_ready_polls
                self._answer(200 if ready else 503, {"ready": ready})
            elif self.path == "/":
                self._answer(behaviour.health_status, {"status": "ok"})
            else:
                self._answer(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length))
            if self.path != "/predict":
                self._answer(404, {"detail": "Not Found"})
                return
            behaviour.predictions.append(payload)
            self._answer(behaviour.predict_status, behaviour.predict_body)

    return Handler


@pytest.fixture
def stub_service() -> Iterator[StubService]:
    """A service on a free loopback port that answers like predict_buy_app (configurable)."""
    behaviour = StubBehaviour()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield StubService(f"http://127.0.0.1:{port}", port, behaviour)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_docker(tmp_path: Path) -> Path:
    """A `docker` stand-in that records its arguments; FAKE_DOCKER_RUNNING says if `inspect`
    reports the container as running (default true)."""
    calls = tmp_path / "docker-calls.txt"
    script = tmp_path / "docker"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> "{calls}"\n'
        'case "$1" in\n'
        "  run) echo 0123456789ab ;;\n"
        '  inspect) echo "${FAKE_DOCKER_RUNNING:-true}" ;;\n'
        "  logs) echo 'uvicorn: model.skops sha256 mismatch' ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return script
