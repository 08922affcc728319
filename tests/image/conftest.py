"""Image-tier fixtures: the local base, the real service image, a running container, a registry.

Everything runs for real: mmdebstrap builds the Debian base (cached in local image storage under a
tag derived from its inputs), buildah builds service/Dockerfile on it with a model the pipeline
trained in a copy of the project, podman (with runc) runs the container, Debian's docker-registry
receives the push. Containers, images and the registry the tests create are removed afterwards;
only the base stays, since its tag names its inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from filelock import FileLock

from ml.bench import copy_project, set_rows
from tests.conftest import REPO_ROOT, require_binary
from tests.delivery.conftest import load_script
from tests.service.conftest import free_port

# Limits can be lowered but not raised inside a container here (podman's defaults try to raise).
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# crun fails on this kind of machine ("cgroups in hybrid mode not supported").
RUNTIME = ("--runtime", "runc")
READY_DEADLINE_S = 60.0
TRAIN_ROWS, TEST_ROWS = 12_000, 3_000
BIN = Path(sys.executable).parent

image_script: ModuleType = load_script("container_image")


@pytest.fixture(scope="session")
def tools() -> Any:
    """buildah and podman on this machine's storage driver; skipped (failed under CI) without."""
    for binary in ("buildah", "podman", "runc", "mmdebstrap", "skopeo"):
        require_binary(binary)
    return image_script.Buildah()


def podman(tools: Any, *args: str, check: bool = True, timeout: float = 300) -> str:
    """Run podman with the machine's flags; its stdout (fails the test on an error when check)."""
    done = subprocess.run(
        tools.podman(*args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


@dataclass
class Training:
    """`dvc repro` of a small model in a copy of the project, running in the background."""

    project: Path
    process: subprocess.Popen[str]


@pytest.fixture(scope="session")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Training]:
    """Start training in a copy of the project, as a fresh clone has it; stopped if abandoned.

    It runs while the base is built (the one is CPU, the other mostly downloads).
    """
    project = tmp_path_factory.mktemp("clone") / "predict-buy"
    copy_project(project, REPO_ROOT)
    set_rows(project / "params.yaml", TRAIN_ROWS, TEST_ROWS)
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("PYTHONPATH", None)  # the stages run from the project root alone
    log = (project.parent / "dvc-repro.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "dvc"), "repro"],
        cwd=project,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Training(project, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def configured_base() -> str | None:
    """$PYTHON_IMAGE, where the machine can pull a base (GitHub's runners: the official one)."""
    return os.environ.get("PYTHON_IMAGE") or None


@pytest.fixture(scope="session")
def base_image(tools: Any, training: Training, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The local Debian bookworm base with Python 3.11 (built once, then reused by its tag)."""
    configured = configured_base()
    if configured:
        return configured
    # `make test` runs two xdist workers, and both may need the base: the first builds it while
    # the other waits on this lock (in the directory the workers share), then finds it by its tag.
    with FileLock(tmp_path_factory.getbasetemp().parent / "predict-buy-base.lock"):
        return str(image_script.build_base(tools))


@pytest.fixture(scope="session")
def trained_project(training: Training) -> Path:
    """The project copy once `dvc repro` has trained, evaluated and gated its model."""
    status = training.process.wait(timeout=900)
    log = (training.project.parent / "dvc-repro.log").read_text()
    assert status == 0, f"dvc repro exited with {status}:\n{log[-4000:]}"
    return training.project


@pytest.fixture(scope="session")
def unique() -> str:
    """A suffix that keeps this run's images and containers apart from any other run's."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def built_image(tools: Any, base_image: str, trained_project: Path, unique: str) -> Iterator[Any]:
    """service/Dockerfile built by buildah on the local base; removed at the end."""
    reference = f"localhost/predict-buy-test/predict_buy_app:{unique}"
    try:
        yield image_script.build_with_buildah(tools, trained_project, reference, base_image)
    finally:
        tools.remove(reference)


@dataclass
class Container:
    """A running container of the image, its port on 127.0.0.1 published as `base_url`."""

    name: str
    base_url: str
    tools: Any

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.tools.podman("exec", self.name, *command),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def inspect(self) -> dict[str, Any]:
        return dict(json.loads(podman(self.tools, "inspect", self.name))[0])

    def running(self) -> bool:
        state = podman(self.tools, "inspect", "--format", "{{.State.Running}}", self.name)
        return state.strip() == "true"

    def logs(self) -> str:
        done = subprocess.run(
            self.tools.podman("logs", self.name), capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr


def run_arguments(name: str, port: int, image: str) -> list[str]:
    """`podman run` as production runs the image: read-only root, a tmpfs /tmp, loopback port."""
    return [
        "run",
        "--detach",
        "--name",
        name,
        *RUNTIME,
        *ULIMITS,
        "--read-only",
        "--tmpfs",
        "/tmp",
        # Health is probed by the tests (`podman healthcheck run`); no systemd timer here.
        "--health-interval",
        "disable",
        "--publish",
        f"127.0.0.1:{port}:8000",
        image,
    ]


def wait_until_ready(container: Container, deadline_s: float = READY_DEADLINE_S) -> float:
    """Poll /readyz until 200 (never a fixed sleep); fail with the log if the container stops."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            if httpx.get(f"{container.base_url}/readyz", timeout=1.0).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if not container.running():
            pytest.fail(f"container {container.name} stopped before ready:\n{container.logs()}")
        time.sleep(0.05)  # poll interval, bounded by the deadline
    pytest.fail(f"{container.name}: /readyz not 200 within {deadline_s} s:\n{container.logs()}")


@pytest.fixture(scope="session")
def container(tools: Any, built_image: Any, unique: str) -> Iterator[Container]:
    """The built image running as in production; stopped and removed at the end."""
    name = f"predict-buy-test-{unique}"
    port = free_port()
    live = Container(name, f"http://127.0.0.1:{port}", tools)
    try:
        podman(tools, *run_arguments(name, port, built_image.reference))
        wait_until_ready(live)
        yield live
    finally:
        podman(tools, "rm", "--force", "--time", "5", name, check=False)


@pytest.fixture(scope="session")
def tampered_image(
    tools: Any, built_image: Any, trained_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The built image with one byte of its model.npz changed (sha256 no longer matches)."""
    reference = built_image.reference + "-tampered"
    data = bytearray((trained_project / "models" / "model.npz").read_bytes())  # the file copied
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path_factory.mktemp("tampered") / "model.npz"
    tampered.write_bytes(bytes(data))
    working = subprocess.run(
        tools.buildah("from", built_image.reference), capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        for step in (
            ("copy", "--chmod", "0444", working, str(tampered), "/app/models/model.npz"),
            ("commit", "--quiet", "--format", "docker", working, reference),
        ):
            subprocess.run(tools.buildah(*step), capture_output=True, check=True, timeout=300)
    finally:
        subprocess.run(tools.buildah("rm", working), capture_output=True, check=False)
    try:
        yield reference
    finally:
        tools.remove(reference)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port for this session; yields host:port."""
    binary = require_binary("docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not _answers(f"http://127.0.0.1:{port}/v2/"):
            assert process.poll() is None, f"docker-registry exited with {process.returncode}"
            assert time.monotonic() < deadline, "docker-registry did not answer in time"
            time.sleep(0.05)  # poll interval, bounded by the deadline
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False
