"""The image, without a Docker engine: its CMD runs from exactly the files its COPY lines copy.

The test reads service/Dockerfile, lays out the runtime stage's files as the build would (the
context filtered by .dockerignore, COPY sources and destinations, WORKDIR, ENV), installs
requirements/service.txt into a fresh virtual environment (what the build stage does) and runs the
CMD. A file the service imports but the Dockerfile does not copy makes the service fail here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.schemas import ORIGINAL_SAMPLE
from tests.conftest import REPO_ROOT
from tests.service.conftest import LiveServer, free_port, stop, wait_until_serving

DOCKERFILE = REPO_ROOT / "service" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
UV = REPO_ROOT / ".tools" / "bin" / "uv"
VENV_IN_IMAGE = "/opt/venv"

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@dataclass
class Stage:
    """The instructions of one build stage that matter for running it."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[list[str], str, dict[str, str]]] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, rest = logical.partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            words = rest.split()
            stages.append(Stage(words[-1] if "AS" in (w.upper() for w in words) else words[0]))
        elif not stages:
            continue
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                stages[-1].env[key] = value
        elif keyword == "WORKDIR":
            stages[-1].workdir = rest
        elif keyword == "COPY":
            words = shlex.split(rest)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            stages[-1].copies.append((paths[:-1], paths[-1], flags))
        elif keyword == "CMD":
            stages[-1].cmd = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            stages[-1].healthcheck = json.loads(rest[rest.index("CMD") + 3 :].strip())
    return stages


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, `!` re-includes."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.rstrip("/")
        options = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in options):
            excluded = not negated
    return excluded


def build_context(context: Path, model_dir: Path) -> None:
    """The repository as `docker build` would send it, with the fixture model in models/."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [REPO_ROOT / name for name in ("requirements", "ml", "service")]
    staged = context / "_repo"
    for source in sources:
        shutil.copytree(source, staged / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_dir, staged / "models")
    for path in sorted(staged.rglob("*")):
        relative = path.relative_to(staged).as_posix()
        if path.is_file() and not ignored(relative, patterns):
            target = context / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    shutil.rmtree(staged)


def apply_copies(stage: Stage, context: Path, root: Path) -> None:
    """Carry out the stage's COPY lines (not --from) from the context into the image root."""
    workdir = root / stage.workdir.lstrip("/")
    for sources, destination, flags in stage.copies:
        if "from" in flags:
            continue
        target = workdir / destination if not destination.startswith("/") else root / destination
        for source in sources:
            origin = context / source.rstrip("/")
            assert origin.exists(), (
                f"COPY {source} {destination}: {source} is not in the build context "
                "(missing file, or excluded by .dockerignore)"
            )
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                placed = target / origin.name if destination.endswith("/") else target
                placed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, placed)
                if "chmod" in flags:
                    placed.chmod(int(flags["chmod"], 8))


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def image_root(
    tmp_path_factory: pytest.TempPathFactory, stages: list[Stage], model_dir: Path
) -> Path:
    """The runtime stage's file system (the parts the Dockerfile puts there)."""
    base = tmp_path_factory.mktemp("image")
    context, root = base / "context", base / "root"
    build_context(context, model_dir)
    apply_copies(stages[-1], context, root)
    return root


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory: pytest.TempPathFactory, stages: list[Stage]) -> Path:
    """What the build stage makes: the serving dependency set from its hashed lock, nothing else."""
    requirements = next(s for s, _, f in stages[0].copies if "from" not in f and s)[0]
    assert requirements == "requirements/service.txt", requirements
    venv = tmp_path_factory.mktemp("venv") / "opt-venv"
    if not UV.is_file():
        pytest.skip(f"{UV} missing: run `make venv` first")
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [
            str(UV),
            "pip",
            "sync",
            "-q",
            "--require-hashes",
            "--python",
            str(venv / "bin" / "python"),
            str(REPO_ROOT / requirements),
        ],
        check=True,
        timeout=300,
    )
    return venv


def _image_env(stage: Stage, root: Path, venv: Path, port: int) -> dict[str, str]:
    """The stage's ENV with image paths mapped into the test's directories."""
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    for key, value in stage.env.items():
        value = value.replace("$PATH", os.environ["PATH"])
        value = value.replace(VENV_IN_IMAGE, str(venv))
        if value.startswith("/app"):
            value = str(root / value.lstrip("/"))
        env[key] = value
    # The image listens on 0.0.0.0; the test stays on loopback.
    env.update(PREDICT_BUY_HOST="127.0.0.1", PREDICT_BUY_PORT=str(port))
    return env


def test_the_image_copies_only_what_serving_needs(image_root: Path) -> None:
    # given the runtime stage's files / then there is no training code, no tests, no secrets
    files = {p.relative_to(image_root).as_posix() for p in image_root.rglob("*") if p.is_file()}
    assert "app/models/model.npz" in files and "app/models/model.json" in files
    assert not any(f.startswith("app/tests/") or f.startswith("app/infra/") for f in files)
    assert not {"app/ml/train.py", "app/ml/data.py", "app/service/Dockerfile"} & files
    assert not any("postman" in f or "__pycache__" in f for f in files), sorted(files)


def test_the_serving_venv_has_no_training_libraries(serving_venv: Path) -> None:
    # the image must not carry scikit-learn or pandas
    for module in ("sklearn", "pandas"):
        done = subprocess.run(
            [str(serving_venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            check=False,
        )
        assert done.returncode != 0, f"{module} is importable in the serving environment"


def test_the_image_command_serves(
    tmp_path: Path, stages: list[Stage], image_root: Path, serving_venv: Path
) -> None:
    # given the runtime stage's command, environment and working directory
    runtime = stages[-1]
    assert runtime.cmd == ["python", "-m", "service"], runtime.cmd
    port = free_port()
    env = _image_env(runtime, image_root, serving_venv, port)
    assert int(env["WEB_CONCURRENCY"]) >= 2, "the image should run several workers"
    command = [str(serving_venv / "bin" / runtime.cmd[0]), *runtime.cmd[1:]]
    workdir = image_root / runtime.workdir.lstrip("/")
    log_path = tmp_path / "image.log"
    # when it is run
    with log_path.open("wb") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=sink)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_serving(server, deadline_s=60)
        # then it answers predictions, metrics summed over its workers, and its health check
        answer = httpx.post(f"{server.base_url}/predict", json=ORIGINAL_SAMPLE, timeout=10)
        assert answer.status_code == 200, answer.text
        metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        assert 'route="/predict",status="200"' in metrics
        health = subprocess.run(
            [str(serving_venv / "bin" / runtime.healthcheck[0]), *runtime.healthcheck[1:]],
            cwd=workdir,
            env=env,
            capture_output=True,
            check=False,
        )
        assert health.returncode == 0, health.stderr
    finally:
        stop(process)
    assert all(json.loads(line) for line in log_path.read_text().splitlines() if line.strip())
