"""DVC pulls from the S3 remote verify hashes: a poisoned object in the bucket is refused.

Real S3 over HTTP (moto_server on 127.0.0.1): a clone with the repository's own .dvc/config,
pointed at the bucket with the workflows' `use-s3-remote` command, pushes a file, the object in
the bucket is overwritten, and a fresh pull (as publish does) must refuse it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO_ROOT
from tests.moto_server import MotoServer, child_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "predict-buy-verify"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto-dvc")) as server:
        yield server


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def pushed_clone(tmp_path: Path, moto: MotoServer, dvc_config: str) -> tuple[Path, dict, str]:
    """A DVC clone with `dvc_config` that pushed model.bin to the bucket; returns the object key."""
    env = child_environment(tmp_path)
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto's fixed test credentials)
    )
    bucket = f"{BUCKET}-{tmp_path.name.lower().replace('_', '-')[-20:]}".strip("-")
    s3.create_bucket(Bucket=bucket)
    clone = tmp_path / "clone"
    clone.mkdir()
    for command in (["git", "init", "-q"], [str(VENV_BIN / "dvc"), "init", "-q"]):
        assert run(command, clone, env).returncode == 0
    (clone / ".dvc" / "config").write_text(dvc_config)
    point = run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "ml.cli",
            "use-s3-remote",
            "--bucket",
            bucket,
            "--endpoint-url",
            moto.url,
        ],
        clone,
        env,
    )
    assert point.returncode == 0, point.stderr
    (clone / "model.bin").write_bytes(b"the model that passed the quality gate\n")
    for command in (["add", "model.bin"], ["push", "-r", "s3"]):
        done = run([str(VENV_BIN / "dvc"), *command], clone, env)
        assert done.returncode == 0, done.stderr
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    # The attacker's move: other bytes under the same content address.
    s3.put_object(Bucket=bucket, Key=key, Body=b"poisoned model\n")
    shutil.rmtree(clone / ".dvc" / "cache")
    (clone / "model.bin").unlink()
    return clone, env, key


def test_a_poisoned_object_in_the_remote_is_refused(tmp_path: Path, moto: MotoServer) -> None:
    # given the repository's DVC config, and a pushed object overwritten in the bucket
    clone, env, key = pushed_clone(tmp_path, moto, (REPO_ROOT / ".dvc" / "config").read_text())
    assert key.startswith("DVC_Artefacts/files/md5/")

    # when publish's pull runs
    pulled = run([str(VENV_BIN / "dvc"), "pull", "-r", "s3", "model.bin"], clone, env)

    # then it fails and the poisoned bytes never reach the workspace
    assert pulled.returncode != 0, f"the poisoned object was accepted: {pulled.stdout}"
    assert not (clone / "model.bin").exists()


def test_without_verify_the_same_poison_would_be_accepted(tmp_path: Path, moto: MotoServer) -> None:
    # given the same config with verification switched off (what the setting prevents)
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    assert "verify = true" in config, ".dvc/config's s3 remote must verify what it pulls"
    clone, env, _ = pushed_clone(tmp_path, moto, config.replace("verify = true", "verify = false"))

    # when
    pulled = run([str(VENV_BIN / "dvc"), "pull", "-r", "s3", "model.bin"], clone, env)

    # then DVC alone would hand the poisoned bytes on: the committed setting is what stops it
    assert pulled.returncode == 0, pulled.stderr
    assert (clone / "model.bin").read_bytes() == b"poisoned model\n"
