"""End to end over real S3 (moto_server on 127.0.0.1): upload, ingest, dvc repro, push, clone, pull.

A copy of the repository gets a small synthetic dataset uploaded to s3://<bucket>/new_ML_data/ with
the `upload` command, points data.source at it, runs the whole pipeline with `dvc repro`, pushes to
the DVC remote `s3` (s3://<bucket>/DVC_Artefacts); a fresh `git clone` then pulls from that remote
alone and must get every DVC-tracked output back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from ml.bench import copy_project
from ml.data import generate_dataset
from tests.moto_server import MotoServer, child_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUCKET = "predict-buy-e2e"
DATA_URL = f"s3://{BUCKET}/new_ML_data/"
TRAIN_ROWS, TEST_ROWS = 16_000, 4_000
# Fewer, larger boosting steps than the project's defaults: this test proves the data path, not
# model quality, and must stay short on two cores. The quality gate still applies.
FAST_TRAINING = {"learning_rate": 0.15, "max_iter": 150}
STEP_TIMEOUT = 300


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run one step; on failure show its output, since that is what explains it."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
    )
    print(f"{time.perf_counter() - started:6.1f}s  {' '.join(command[:4])}")  # shown with -s
    assert done.returncode == 0, (
        f"`{' '.join(command)}` exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    return done.stdout + done.stderr


def git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    identity = ["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    return run(["git", *identity, "-c", "commit.gpgsign=false", *args], cwd, env)


def tracked_outputs(repo: Path) -> dict[str, str]:
    """sha256 of every file DVC tracks in the cache, per path, from dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    digests: dict[str, str] = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = repo / out["path"]
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                digests[str(file.relative_to(repo))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, moto: MotoServer) -> dict[str, str]:
    """For every child process: dummy credentials, the venv first on PATH (dvc.yaml runs python)."""
    variables = child_environment(tmp_path)
    variables["PATH"] = f"{VENV_BIN}{os.pathsep}{variables.get('PATH', '')}"
    variables["DVC_NO_ANALYTICS"] = "1"
    variables.pop("PYTHONPATH", None)  # each step runs from its own copy of the project
    return variables


def test_upload_repro_push_then_a_fresh_clone_pulls_everything_byte_for_byte(
    tmp_path: Path, moto: MotoServer, env: dict[str, str]
) -> None:
    # given: a copy of the project in its own git repository, and an empty bucket
    repo = tmp_path / "repo"
    copy_project(repo, REPO_ROOT)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["hgb"].update(FAST_TRAINING)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git("commit", "--quiet", "--all", "--message", "fast training", cwd=repo, env=env)
    s3 = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client("s3", endpoint_url=moto.url)
    s3.create_bucket(Bucket=BUCKET)

    # given: a small synthetic dataset uploaded to new_ML_data/ by the CLI
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    frame, _ = generate_dataset(TRAIN_ROWS + TEST_ROWS, seed=11)
    frame.iloc[:TRAIN_ROWS].to_csv(incoming / "train.csv", index=False)
    frame.iloc[TRAIN_ROWS:].to_csv(incoming / "test.csv", index=False)
    cli = [sys.executable, "-m", "ml.cli"]
    endpoint = ["--endpoint-url", moto.url]
    upload = [*cli, "upload", str(incoming / "train.csv"), str(incoming / "test.csv")]
    run([*upload, "--bucket", BUCKET, *endpoint], repo, env)

    # when: the pipeline ingests from S3 and pushes to the S3 remote
    run([*cli, "data-source", DATA_URL, *endpoint], repo, env)
    run([*cli, "use-s3-remote", "--bucket", BUCKET, *endpoint], repo, env)
    run([str(VENV_BIN / "dvc"), "repro"], repo, env)
    run([str(VENV_BIN / "dvc"), "push", "--remote", "s3"], repo, env)
    git("add", "--all", cwd=repo, env=env)
    git("commit", "--quiet", "--message", "train on new_ML_data", cwd=repo, env=env)
    pushed = tracked_outputs(repo)

    # when: a fresh clone pulls from the S3 remote only
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(repo), str(clone), cwd=tmp_path, env=env)
    run([*cli, "use-s3-remote", "--bucket", BUCKET, *endpoint], clone, env)
    run([str(VENV_BIN / "dvc"), "pull", "--remote", "s3"], clone, env)
    pulled = tracked_outputs(clone)

    # then: every DVC-tracked output came back byte for byte
    assert "models/model.skops" in pushed and "data/raw/train.csv" in pushed, sorted(pushed)
    assert pulled == pushed, {
        path: (pushed.get(path), pulled.get(path))
        for path in sorted(set(pushed) | set(pulled))
        if pushed.get(path) != pulled.get(path)
    }
    # then: the data the model was trained on is the uploaded data, with its md5 recorded
    uploaded = (incoming / "train.csv").read_bytes()
    assert (clone / "data/raw/train.csv").read_bytes() == uploaded, "ingest changed the data"
    source = json.loads((clone / "data/raw/SOURCE.json").read_text())
    assert source["source"] == DATA_URL
    assert source["md5"]["train.csv"] == hashlib.md5(uploaded, usedforsecurity=False).hexdigest()
    # then: the artefacts live under DVC_Artefacts/ in the bucket, nothing outside the two prefixes
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(k.startswith("DVC_Artefacts/files/md5/") for k in keys), keys
    assert all(k.startswith(("DVC_Artefacts/", "new_ML_data/")) for k in keys), keys
