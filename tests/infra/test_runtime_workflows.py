"""The post-deploy Postman run of publish.yml and promote.yml: the steps, run by bash, for real."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, require
from tests.infra.conftest import free_port
from tests.service.conftest import run_service
from tests.service.model_factory import write_model_dir

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
POSTMAN = REPO_ROOT / "service" / "postman"
SCRIPT = REPO_ROOT / "scripts" / "postman_run.py"
DIGEST = "sha256:" + "ab" * 32
STACKS = {"publish.yml": ("publish", "nonprod"), "promote.yml": ("promote", "prod")}


def steps(workflow: str) -> list[dict[str, Any]]:
    job, _ = STACKS[workflow]
    return yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job]["steps"]


def postman_step(workflow: str) -> dict[str, Any]:
    _, stack = STACKS[workflow]
    [step] = [
        s for s in steps(workflow) if s.get("name") == f"Postman run against {stack}'s serviceUrl"
    ]
    return step


def run_step(step: dict[str, Any], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The step's script, run by bash from the repository root as the runner would."""
    summary = tmp_path / "summary.md"
    summary.touch()
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("workflow", list(STACKS))
def test_the_postman_run_follows_pulumi_up_with_the_stacks_outputs(workflow: str) -> None:
    # given
    names = [s.get("name", "") for s in steps(workflow)]
    step = postman_step(workflow)
    install = next(s for s in steps(workflow) if s.get("name") == "Install newman from its lock")

    # then it runs after `pulumi up`, on that step's outputs, with newman from the npm lock
    up = next(i for i, s in enumerate(steps(workflow)) if s.get("id") == "up")
    assert names.index(step["name"]) > up and names.index(install["name"]) > up
    assert step["env"]["SERVICE_URL"] == "${{ steps.up.outputs.serviceUrl }}"
    assert step["env"]["RUNTIME"] == "${{ steps.up.outputs.runtime }}"
    assert "npm ci --prefix service/postman --ignore-scripts" in install["run"]
    assert 'scripts/postman_run.py --url "$SERVICE_URL"' in step["run"]
    assert "continue-on-error" not in step, "a failed Postman run must fail the workflow"


@pytest.mark.parametrize("workflow", list(STACKS))
def test_a_registry_only_stack_skips_the_run_and_says_so(workflow: str, tmp_path: Path) -> None:
    # given / when the stack exported runtime=registry-only and no serviceUrl
    done = run_step(postman_step(workflow), tmp_path, RUNTIME="registry-only", SERVICE_URL="")

    # then
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is registry only" in done.stdout


@pytest.mark.parametrize("workflow", list(STACKS))
def test_a_service_running_another_digest_fails_the_workflow(workflow: str, tmp_path: Path) -> None:
    # given the service runs a digest the stack does not hold
    env = {
        "RUNTIME": "ecs-fargate",
        "SERVICE_URL": "http://127.0.0.1:9",
        "IMAGE_DIGEST": DIGEST,
        "RUNNING_DIGEST": "sha256:" + "cd" * 32,
    }

    # when / then
    done = run_step(postman_step(workflow), tmp_path, **env)
    assert done.returncode == 1
    assert "::error::" in done.stdout and DIGEST in done.stdout


@pytest.mark.parametrize("workflow", list(STACKS))
def test_a_missing_service_url_fails_the_workflow(workflow: str, tmp_path: Path) -> None:
    # given a stack with a runtime whose serviceUrl output is missing
    env = {"RUNTIME": "ecs-fargate", "SERVICE_URL": "", "IMAGE_DIGEST": DIGEST}

    # when
    done = run_step(postman_step(workflow), tmp_path, RUNNING_DIGEST=DIGEST, **env)

    # then
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a service URL" in done.stderr


def test_a_service_that_never_gets_ready_fails_before_the_deadline() -> None:
    # given a loopback port nobody serves on
    url = f"http://127.0.0.1:{free_port()}"

    # when
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", url, "--deadline", "1", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then it gives up, naming the URL and the last error
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{url}/readyz did not answer 200 within 1s" in done.stderr


@pytest.fixture(scope="module")
def newman() -> Path:
    """newman from `npm ci` of service/postman (re-run only when the lock changed)."""
    npm = shutil.which("npm")
    require(npm is not None and shutil.which("node") is not None, "node and npm are not installed")
    assert npm is not None
    lock = POSTMAN / "package-lock.json"
    stamp = POSTMAN / "node_modules" / ".predict-buy-lock.sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    binary = POSTMAN / "node_modules" / ".bin" / "newman"
    if not (binary.exists() and stamp.is_file() and stamp.read_text() == digest):
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=POSTMAN,
            check=True,
            timeout=300,
        )
        stamp.write_text(digest)
    return binary


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("workflow", list(STACKS))
def test_the_workflow_step_runs_the_collection_against_a_live_service(
    workflow: str, newman: Path, tmp_path: Path
) -> None:
    # given a live service, as the stack's serviceUrl would reach it
    model_dir = write_model_dir(tmp_path / "model")
    with run_service(tmp_path / "service.log", model_dir) as server:
        env = {
            "RUNTIME": "ecs-fargate",
            "SERVICE_URL": server.base_url,
            "IMAGE_DIGEST": DIGEST,
            "RUNNING_DIGEST": DIGEST,
        }

        # when the workflow's step runs
        done = run_step(postman_step(workflow), tmp_path, **env)

    # then the collection passed and the job summary says how many assertions
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = (tmp_path / "summary.md").read_text()
    assert f"Postman assertions passed against {server.base_url}" in summary, summary


@pytest.mark.e2e
@pytest.mark.slow
def test_a_failing_collection_fails_the_run(newman: Path, tmp_path: Path) -> None:
    # given a live service and a collection whose one assertion cannot hold
    collection = tmp_path / "failing.postman_collection.json"
    collection.write_text(
        '{"info": {"name": "failing", "schema": '
        '"https://schema.getpostman.com/json/collection/v2.1.0/collection.json"}, "item": [{"name":'
        ' "readyz", "event": [{"listen": "test", "script": {"exec": ["pm.test(\'is 418\', () => '
        'pm.response.to.have.status(418));"]}}], "request": {"method": "GET", "url": '
        '"{{baseUrl}}/readyz"}}]}'
    )
    model_dir = write_model_dir(tmp_path / "model")
    with run_service(tmp_path / "service.log", model_dir) as server:
        # when
        done = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--url",
                server.base_url,
                "--collection",
                str(collection),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # then
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 of 1 assertions failed" in done.stderr, done.stderr
