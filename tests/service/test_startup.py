"""Start-up refuses a missing, corrupt or incompatible model: one clear line, non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ml.artefact import METADATA_FILE
from tests.conftest import REPO_ROOT
from tests.service.conftest import free_port, service_env

EXIT_BAD_SETTINGS = 2
EXIT_BAD_MODEL = 3


def _start(model_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m service` and let it stop by itself (it must, without serving)."""
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO_ROOT,
        env=service_env(model_dir, free_port(), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one log line, got:\n{done.stdout}{done.stderr}"
    record = json.loads(lines[0])
    assert record["level"] == "critical", record
    return record


def _missing(model_dir: Path) -> None:
    shutil.rmtree(model_dir)


def _corrupt(model_dir: Path) -> None:
    compiled = model_dir / "model.npz"
    data = bytearray(compiled.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: what a bad copy or a bit rot does
    compiled.write_bytes(bytes(data))


def _old_numpy(model_dir: Path) -> None:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["library_versions"]["numpy"] = "1.26.4"
    path.write_text(json.dumps(metadata))


@pytest.mark.parametrize(
    ("break_model", "says"),
    [
        (_missing, "model metadata not found; run `make run` to train one here, or `dvc pull"),
        (_corrupt, "does not match"),
        (_old_numpy, "model was saved with numpy 1.26.4"),
    ],
    ids=["missing", "corrupt-sha256", "incompatible-numpy"],
)
def test_a_bad_model_stops_the_service_with_one_line(
    tmp_path: Path, model_dir: Path, break_model: Callable[[Path], None], says: str
) -> None:
    # given a copy of a good model directory, broken one way
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    break_model(broken)
    # when the service is started
    done = _start(broken)
    # then it exits non-zero with one JSON line that says what is wrong and how to fix it
    assert done.returncode == EXIT_BAD_MODEL, done.stderr
    message = str(_one_line(done)["message"])
    assert message.startswith("cannot serve: ")
    assert says in message, message


def test_a_bad_setting_stops_the_service_with_one_line(model_dir: Path) -> None:
    # given a port that is not a number / when started / then one line names the variable
    done = _start(model_dir, PREDICT_BUY_PORT="eighty")
    assert done.returncode == EXIT_BAD_SETTINGS
    message = str(_one_line(done)["message"])
    assert "PREDICT_BUY_PORT" in message and "'eighty'" in message, message


def test_a_misspelt_setting_is_not_ignored(model_dir: Path) -> None:
    # given a typo in a variable name / when started / then it refuses, naming the variable
    done = _start(model_dir, PREDICT_BUY_MODELDIR="elsewhere")
    assert done.returncode == EXIT_BAD_SETTINGS
    message = str(_one_line(done)["message"])
    assert "unknown setting PREDICT_BUY_MODELDIR" in message, message
    assert "PREDICT_BUY_MODEL_DIR" in message, "the message should list the real settings"


def test_the_app_factory_also_refuses_a_bad_model(tmp_path: Path) -> None:
    # given uvicorn started directly on the factory (bypassing the pre-flight check)
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--port", "0"],
        cwd=REPO_ROOT,
        env=service_env(tmp_path / "absent", free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then the lifespan refuses to serve: non-zero exit, and the reason is logged
    assert done.returncode != 0
    assert "cannot serve" in done.stdout + done.stderr
