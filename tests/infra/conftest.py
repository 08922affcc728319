"""Fixtures for the Pulumi program tests: build contexts, mocked stack runs, moto and a registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from ml.artefact import ModelMetadata, describe_file, write_metadata
from tests.conftest import REPO_ROOT, require_binary
from tests.infra.program_runner import REGISTRY
from tests.moto_server import MotoServer

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
REGION = "eu-west-2"
NONPROD_REPOSITORY = "ce7-grp-1/nonprod/predict_buy_app"
PROD_REPOSITORY = "ce7-grp-1/prod/predict_buy_app"
NONPROD_URL = f"{REGISTRY}/{NONPROD_REPOSITORY}"
PROD_URL = f"{REGISTRY}/{PROD_REPOSITORY}"
NONPROD_DIGEST = "sha256:" + "ab" * 32
SOURCE_STACK = "organization/predict-buy/nonprod"
DEFAULT_TAGS = {"Project": "predict-buy", "Owner": "ce7-grp-1", "CostCenter": "predict-buy"}
TAGS_CONFIG = {"aws:defaultTags": json.dumps({"tags": DEFAULT_TAGS})}
NONPROD_CONFIG = {
    "aws:region": REGION,
    **TAGS_CONFIG,
    "predict-buy:bucketName": "ce7-grp-1-bucket",
}
PROD_CONFIG = {
    "aws:region": REGION,
    **TAGS_CONFIG,
    "predict-buy:version": "0.1.0",
    "predict-buy:sourceStack": SOURCE_STACK,
}
SOURCE_OUTPUTS = {
    "version": "0.1.0",
    "imageDigest": NONPROD_DIGEST,
    "repositoryUrl": NONPROD_URL,
    "imageRef": f"{NONPROD_URL}@{NONPROD_DIGEST}",
}
STARTUP_DEADLINE_SECONDS = 30.0


def write_model(model_dir: Path) -> None:
    """A small model directory: two artefact files and metadata with their sha256."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.skops").write_bytes(b"fitted pipeline bytes")
    (model_dir / "model.npz").write_bytes(b"compiled lookup tables")
    metadata = ModelMetadata(
        version="0.1.0",
        created_at="2026-01-01T00:00:00Z",
        artefacts={
            "pipeline": describe_file(model_dir / "model.skops"),
            "compiled": describe_file(model_dir / "model.npz"),
        },
        training_data={"path": "data/raw/train.csv", "md5": "0" * 32, "rows": 100},
        params={},
        metrics={"roc_auc": 0.8},
        threshold=0.5,
        library_versions={"numpy": "2.1.0"},
        feature_contract=[],
    )
    write_metadata(model_dir, metadata)


def write_build_context(root: Path, version: str = "0.1.0") -> Path:
    """A build context like the repository's: pyproject, service/Dockerfile, models/."""
    (root / "service").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "predict-buy"\nversion = "{version}"\n'
    )
    (root / "service" / "Dockerfile").write_text(
        "FROM python:3.11-slim\nCOPY models /app/models\nCOPY service /app/service\n"
    )
    (root / "service" / "app.py").write_text("print('serving')\n")
    (root / ".dockerignore").write_text(".git\n**/__pycache__\ndata\n")
    write_model(root / "models")
    return root


@pytest.fixture
def build_context(tmp_path: Path) -> Path:
    return write_build_context(tmp_path / "context")


@dataclass(frozen=True)
class StackRun:
    """What one mocked run of the program registered and exported, or the error it raised."""

    resources: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    exports: dict[str, dict[str, Any]]
    error: dict[str, Any] | None

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == resource_type]

    def one(self, resource_type: str) -> dict[str, Any]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, got {[r['name'] for r in found]}"
        return found[0]

    def value(self, key: str) -> Any:
        assert self.error is None, f"the program failed: {self.error['message']}"
        assert key in self.exports, f"no export {key!r}; exports: {sorted(self.exports)}"
        return self.exports[key]["value"]

    def failure(self) -> str:
        assert self.error is not None, "the program succeeded, but it was expected to fail"
        return self.error["message"]


RunStack = Callable[..., StackRun]


def run_program(spec: dict[str, Any]) -> StackRun:
    """Run tests.infra.program_runner in a fresh process and parse its report.

    spec["github_sha"] (default GIT_SHA) is the commit the run publishes, as CI's GITHUB_SHA.
    """
    spec = dict(spec)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_SHA": spec.pop("github_sha", GIT_SHA),
        # Never reach for AWS: no instance metadata, no real credentials.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    answer = subprocess.run(
        [sys.executable, "-m", "tests.infra.program_runner"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, f"the runner crashed:\n{answer.stderr[-4000:]}"
    report = json.loads(answer.stdout.strip().splitlines()[-1])
    return StackRun(**report)


@pytest.fixture
def run_stack(build_context: Path) -> RunStack:
    """Run one stack: run_stack("prod", config={...}, preview=True, source_outputs={...}, ...)."""

    def run(stack: str, config: dict[str, str] | None = None, **spec: Any) -> StackRun:
        default = NONPROD_CONFIG if stack == "nonprod" else PROD_CONFIG
        return run_program(
            {
                "stack": stack,
                # The cost and owner tags are required everywhere; a test that is about them
                # sets aws:defaultTags itself.
                "config": default if config is None else {**TAGS_CONFIG, **config},
                "build_context": str(spec.pop("context", build_context)),
                "source_outputs": spec.pop("source_outputs", SOURCE_OUTPUTS),
                **spec,
            }
        )

    return run


@pytest.fixture(scope="module")
def module_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_build_context(tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="module")
def nonprod_run(module_context: Path) -> StackRun:
    return run_program(
        {"stack": "nonprod", "config": NONPROD_CONFIG, "build_context": str(module_context)}
    )


@pytest.fixture(scope="module")
def nonprod_oidc_run(module_context: Path) -> StackRun:
    config = {
        **NONPROD_CONFIG,
        "predict-buy:githubOidc": "true",
        "predict-buy:githubRepository": "acme/predict-buy",
        "predict-buy:createOidcProvider": "true",
    }
    return run_program({"stack": "nonprod", "config": config, "build_context": str(module_context)})


@pytest.fixture(scope="module")
def prod_run(module_context: Path) -> StackRun:
    return run_program(
        {
            "stack": "prod",
            "config": PROD_CONFIG,
            "build_context": str(module_context),
            "source_outputs": SOURCE_OUTPUTS,
        }
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    """Poll `url` until it answers, failing early if the process died."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback http only)
                return
        except urllib.error.HTTPError:
            return  # it answered, even if with an error status
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)  # poll interval, bounded by the deadline
    raise AssertionError(f"{name} did not answer on {url} within {STARTUP_DEADLINE_SECONDS}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_ecr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server on 127.0.0.1: a real HTTP ECR API for the release guard and tagging."""
    with MotoServer(tmp_path_factory.mktemp("moto-ecr")) as server:
        yield server.url


@pytest.fixture
def ecr(moto_ecr: str) -> Any:
    """An ECR client of moto_ecr, with moto's fixed test credentials."""
    return boto3.client(
        "ecr",
        region_name="eu-west-2",
        endpoint_url=moto_ecr,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto's fixed test credentials)
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port, storing in tmp_path; yields host:port."""
    binary = require_binary("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", process, "docker-registry")
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
