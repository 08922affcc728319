"""The real image: built by buildah on the local base, run by podman, checked from the outside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.postman_run import run_collection
from tests.conftest import REPO_ROOT
from tests.image.conftest import RUNTIME, ULIMITS, Container, image_script, podman
from tests.service.test_newman import COLLECTION, newman  # noqa: F401 (the fixture, shared)

pytestmark = [pytest.mark.image, pytest.mark.slow]

# Run inside the container: what serving imports, next to what the image holds.
INVENTORY = """
import importlib.metadata as md, json, pathlib, sys
import service.__main__, service.healthcheck, service.main
service.main.create_app()
ml = [m for m in sys.modules if m.split(".")[0] == "ml"]
imported = sorted("__init__" if m == "ml" else m[3:] for m in ml)
print(json.dumps({
    "distributions": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "ml_files": sorted(p.stem for p in pathlib.Path("/app/ml").glob("*.py")),
    "ml_imported": imported,
}))
"""
# Every process in the container: uid and command line.
PROCESSES = """
import json, pathlib
rows = []
for proc in pathlib.Path("/proc").iterdir():
    if proc.name.isdigit():
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode().strip()
        except OSError:
            continue
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        rows.append({"pid": int(proc.name), "uid": int(uid), "cmd": cmdline})
print(json.dumps(rows))
"""
FORBIDDEN = {"pip", "setuptools", "pyyaml", "scikit-learn", "pandas", "watchfiles", "websockets"}


def test_the_image_keeps_docker_format_its_healthcheck_user_and_command(
    tools: Any, built_image: Any
) -> None:
    # given the built image's configuration
    [image] = json.loads(podman(tools, "image", "inspect", built_image.reference))
    # then HEALTHCHECK survived (Docker format), and it runs the service as uid 10001
    assert image["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert image["Healthcheck"]["Test"] == ["CMD", "python", "-m", "service.healthcheck"]
    assert image["User"] == "10001:10001"
    assert image["Config"]["Cmd"] == ["python", "-m", "service"]
    assert "WEB_CONCURRENCY=2" in image["Config"]["Env"], image["Config"]["Env"]
    assert f"sha256:{image['Id']}" == built_image.image_id


def test_it_runs_python_3_11_on_debian_bookworm(container: Container, built_image: Any) -> None:
    # when the container's Python reports itself
    script = (
        "import sys, platform; print(sys.version_info[:2], sys.base_prefix); "
        "print(platform.freedesktop_os_release()['VERSION_CODENAME'])"
    )
    done = container.exec("python", "-c", script)
    # then it is Python 3.11 on bookworm: Debian's (in /usr) on the local base, the official
    # image's own build (in /usr/local) on python:3.11.14-slim-bookworm
    assert done.returncode == 0, done.stderr
    local = built_image.base.startswith(image_script.BASE_REPOSITORY)
    prefix = "/usr" if local else "/usr/local"
    assert done.stdout.split() == ["(3,", "11)", prefix, "bookworm"], done.stdout


def test_the_serving_layer_holds_only_what_serving_imports(container: Container) -> None:
    # when the container lists what it holds and what serving imports
    done = container.exec("python", "-c", INVENTORY)
    assert done.returncode == 0, done.stderr
    inventory = json.loads(done.stdout)
    # then no installer or unused library is in the venv, and every ml/ module copied is used
    assert not FORBIDDEN & set(inventory["distributions"]), inventory["distributions"]
    assert {"fastapi", "uvicorn", "uvloop", "httptools", "numpy"} <= set(inventory["distributions"])
    assert inventory["ml_files"] == inventory["ml_imported"], (
        "service/Dockerfile's ml/ COPY list must be exactly what serving imports"
    )


def test_it_runs_as_uid_10001_with_two_workers_on_a_read_only_root(container: Container) -> None:
    # given the running container
    settings = container.inspect()
    assert settings["HostConfig"]["ReadonlyRootfs"] is True
    # when it lists its processes
    done = container.exec("python", "-c", PROCESSES)
    assert done.returncode == 0, done.stderr
    serving = json.loads(done.stdout)  # podman exec runs as the image's user too
    # then the service and both its workers run as uid 10001
    assert serving and all(p["uid"] == 10001 for p in serving), serving
    workers = [p for p in serving if "multiprocessing" in p["cmd"] and "spawn_main" in p["cmd"]]
    assert len(workers) == 2, f"WEB_CONCURRENCY=2 should start two workers: {serving}"
    # and the root file system is read-only while /tmp (a tmpfs) is writable
    assert container.exec("touch", "/app/written").returncode != 0, "/app must be read-only"
    assert container.exec("touch", "/tmp/written").returncode == 0, "/tmp is a tmpfs"


def test_the_healthcheck_succeeds(tools: Any, container: Container) -> None:
    # when podman runs the image's HEALTHCHECK command in the container
    done = subprocess.run(
        tools.podman("healthcheck", "run", container.name),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then it reports healthy
    assert done.returncode == 0, done.stdout + done.stderr
    status = podman(tools, "inspect", "--format", "{{.State.Health.Status}}", container.name)
    assert status.strip() == "healthy", status


def test_the_postman_collection_passes_against_the_container(
    newman: Path,  # noqa: F811 (the fixture imported above)
    container: Container,
    tmp_path: Path,
) -> None:
    # when newman runs the collection against the container
    report = tmp_path / "newman.json"
    stats = run_collection(container.base_url, newman, COLLECTION, report, timeout=180)
    # then every assertion passes
    assert stats["failed"] == 0 and stats["total"] >= 40, stats


def test_the_smoke_test_passes_against_the_container(container: Container) -> None:
    # when the publish workflow's smoke test runs against the container
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "smoke_test.py"),
            "--url",
            container.base_url,
            "--deadline",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # then it passes every check
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout.splitlines()[-1], done.stdout


def test_a_tampered_model_in_the_image_refuses_to_start_with_one_line(
    tools: Any, tampered_image: str
) -> None:
    # when the tampered image runs as production runs it
    done = subprocess.run(
        tools.podman(
            "run", "--rm", *RUNTIME, *ULIMITS, "--read-only", "--tmpfs", "/tmp", tampered_image
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # then it exits 3 (bad model) before serving, with one JSON line saying why
    lines = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and not line.startswith("time=")  # podman's own diagnostics
    ]
    assert done.returncode == 3, done.stdout + done.stderr
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "critical", record
    assert "model.npz" in record["message"] and "does not match" in record["message"], record
