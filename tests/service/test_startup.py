"""Start-up refuses a missing, corrupt or incompatible model: one clear line, non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ml.artefact import METADATA_FILE, describe_file, read_metadata, write_metadata
from tests.conftest import REPO_ROOT, require, require_binary
from tests.service.conftest import free_port, service_env
from tests.service.model_factory import build_model, write_model_dir

EXIT_BAD_SETTINGS = 2
EXIT_BAD_MODEL = 3
EXIT_CANNOT_LISTEN = 4
EXIT_NO_TEMP_DIR = 5


def _start(
    model_dir: Path,
    port: int | None = None,
    prefix: tuple[str, ...] = (),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m service` and let it stop by itself (it must, without serving)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "service"],
        cwd=REPO_ROOT,
        env=service_env(model_dir, port or free_port(), **env),
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


def _truncated_with_matching_sha256(model_dir: Path) -> None:
    # A copy cut short before its checksum was recorded: the sha256 matches, the zip is broken.
    compiled = model_dir / "model.npz"
    compiled.write_bytes(compiled.read_bytes()[: compiled.stat().st_size // 2])
    metadata = read_metadata(model_dir)
    artefacts = {**metadata.artefacts, "compiled": describe_file(compiled)}
    write_metadata(model_dir, metadata.model_copy(update={"artefacts": artefacts}))


def _nan_table(model_dir: Path) -> None:
    model = build_model()
    model.groups[0].table[:] = np.nan
    write_model_dir(model_dir, model)


@pytest.mark.parametrize(
    ("break_model", "says"),
    [
        (_missing, "model metadata not found; run `make run` to train one here, or `dvc pull"),
        (_corrupt, "does not match"),
        (_old_numpy, "model was saved with numpy 1.26.4"),
        (_truncated_with_matching_sha256, "not a readable compiled model (BadZipFile"),
        (_nan_table, "NaN or infinite values"),
    ],
    ids=["missing", "corrupt-sha256", "incompatible-numpy", "truncated", "nan-table"],
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


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may traverse every folder down to `path`."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (path, *path.parents))


def test_a_model_file_that_cannot_be_read_stops_the_service_with_one_line(
    model_dir: Path, tmp_path: Path
) -> None:
    # given a model directory whose compiled model cannot be read (a folder stands in its place)
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.npz").unlink()
    (broken / "model.npz").mkdir()
    # when started
    done = _start(broken)
    # then one line says which file and why, with the bad-model code
    assert done.returncode == EXIT_BAD_MODEL, done.stdout + done.stderr
    message = str(_one_line(done)["message"])
    assert "model.npz: cannot read the model (Is a directory)" in message, message


def test_an_unreadable_model_file_stops_the_service_with_one_line(model_dir: Path) -> None:
    # given a model directory whose compiled model the service's user may not read
    as_nobody: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # root ignores file modes: start the service as nobody, who must reach the checkout
        # (a clone under a private folder, such as mktemp -d's, cannot be reached)
        if not _reachable_by_others(Path(sys.executable).parent) or not _reachable_by_others(
            REPO_ROOT
        ):
            pytest.skip(
                f"{REPO_ROOT} is not reachable by an unprivileged user, whom file modes bind; "
                "the folder-in-place-of-the-file test covers the same code path"
            )
        as_nobody = (require_binary("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups")
    shared = Path(tempfile.mkdtemp(prefix="unreadable-model-"))
    try:
        shared.chmod(0o755)
        broken = shared / "model"
        shutil.copytree(model_dir, broken)
        broken.chmod(0o755)
        (broken / METADATA_FILE).chmod(0o644)
        (broken / "model.npz").chmod(0o000)
        # when started (as an unprivileged user)
        done = _start(broken, prefix=as_nobody)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    # then one line says which file and why, with the bad-model code
    assert done.returncode == EXIT_BAD_MODEL, done.stdout + done.stderr
    message = str(_one_line(done)["message"])
    assert "model.npz: cannot read the model (Permission denied)" in message, message


def test_a_port_in_use_stops_the_service_with_its_own_code(model_dir: Path) -> None:
    # given another process listening on the port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when the service is started on it
        done = _start(model_dir, port=port)
    # then one line names the address, with the cannot-listen code (not the bad-model one)
    assert done.returncode == EXIT_CANNOT_LISTEN, done.stdout + done.stderr
    message = str(_one_line(done)["message"])
    assert f"cannot listen on 127.0.0.1 port {port} (Address already in use)" in message, message


def test_several_workers_with_a_read_only_tmp_stop_with_one_line(model_dir: Path) -> None:
    # given a read-only /tmp (a private mount namespace; needs root, as the image test has)
    unshare = require_binary("unshare")
    probe = subprocess.run(
        [unshare, "--mount", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    require(probe.returncode == 0, f"cannot make a mount namespace here: {probe.stderr.strip()}")
    read_only_tmp = (
        unshare,
        "--mount",
        "sh",
        "-c",
        'mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && exec "$@"',
        "sh",
    )
    env = {k: v for k, v in os.environ.items() if k == "TMPDIR"}
    assert not env or env["TMPDIR"].startswith("/tmp"), "the test needs TMPDIR under /tmp"
    # when two workers are started
    done = _start(model_dir, prefix=read_only_tmp, PREDICT_BUY_WORKERS="2")
    # then one line says what to do, with its own exit code
    assert done.returncode == EXIT_NO_TEMP_DIR, done.stdout + done.stderr
    message = str(_one_line(done)["message"])
    assert "2 workers share their metrics" in message and "tmpfs at /tmp" in message, message
