"""`dvc repro` end to end in a temporary copy of the project: stages, caching, push, metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.bench import copy_project, set_rows
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BIN = Path(sys.executable).parent


def dvc(project: Path, *arguments: str) -> str:
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("PYTHONPATH", None)  # the stages must work from the project root alone
    completed = subprocess.run(
        [str(BIN / "dvc"), *arguments],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, f"dvc {' '.join(arguments)}:\n{completed.stderr}"
    return completed.stdout + completed.stderr


def git(project: Path, *arguments: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", *identity, *arguments], cwd=project, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "predict-buy"
    copy_project(root, REPO_ROOT)
    set_rows(root / "params.yaml", 12_000, 3_000)
    git(root, "commit", "-qam", "small dataset")
    return root


def test_repro_builds_every_stage_and_publishes_a_gated_model(project):
    # when
    output = dvc(project, "repro")
    # then
    for stage in ("data", "validate", "train", "evaluate"):
        assert f"Running stage '{stage}'" in output, output
    metadata = json.loads((project / "models" / "model.json").read_text())
    assert metadata["metrics"]["roc_auc"] > 0.8
    assert (project / "dvc.lock").is_file()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first model")


def test_a_second_repro_rebuilds_nothing_that_did_not_change(project):
    output = dvc(project, "repro")
    # the data stage re-reads its source every time; identical files stop the rebuild there
    for stage in ("validate", "train", "evaluate"):
        assert f"Stage '{stage}' didn't change, skipping" in output, output


def test_push_sends_data_and_model_to_the_default_offline_remote(project):
    dvc(project, "push")
    storage = project / ".dvc-storage"
    assert storage.is_dir() and sum(1 for p in storage.rglob("*") if p.is_file()) >= 5
    assert "Cache and remote 'local' are in sync" in dvc(project, "status", "--cloud")


def test_changing_a_training_parameter_reruns_train_and_shows_in_metrics_diff(project):
    # given a change of one hyper-parameter
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.03", "learning_rate: 0.1"))
    # when
    output = dvc(project, "repro")
    # then only train and evaluate ran again, and the metrics moved
    assert "Stage 'validate' didn't change, skipping" in output
    assert "Running stage 'train'" in output and "Running stage 'evaluate'" in output
    diff = dvc(project, "metrics", "diff", "HEAD")
    assert "roc_auc" in diff and "reports/metrics.json" in diff, diff


def test_metrics_show_stays_narrow(project):
    # one column per value: no per-column validation counts, no sentences
    widest = max(len(line) for line in dvc(project, "metrics", "show").splitlines())
    assert widest < 1000, f"`dvc metrics show` is {widest} characters wide"


def test_make_clean_removes_everything_the_pipeline_generated(project):
    # given a project where the pipeline ran (and dvc plots were rendered), params as committed
    git(project, "checkout", "--", "params.yaml")
    dvc(project, "plots", "show", "-q")
    assert (project / "dvc_plots").is_dir()
    # when
    subprocess.run(["make", "--no-print-directory", "clean"], cwd=project, check=True,
                   capture_output=True)  # fmt: skip
    # then git sees the checkout as committed: nothing generated is left, ignored or not,
    # except the DVC remote, which make clean keeps
    left = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=project, check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    assert [line for line in left if ".dvc-storage" not in line] == [], left
