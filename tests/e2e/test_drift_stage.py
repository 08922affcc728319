"""The drift stage through DVC in a temporary copy of the project: skipped, then compared."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml.bench import copy_project, set_rows
from tests.conftest import REPO_ROOT
from tests.e2e.test_dvc_pipeline import dvc, git

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "predict-buy"
    copy_project(root, REPO_ROOT)
    set_rows(root / "params.yaml", 4_000, 1_000)
    git(root, "commit", "-qam", "small dataset")
    return root


def test_the_drift_stage_skips_then_compares_the_incoming_batch(
    project: Path, tmp_path: Path
) -> None:
    # given a fresh clone on the offline default (no reference)
    output = dvc(project, "repro", "drift")
    # then the stage runs after the data stage and reports that it skipped
    assert "Running stage 'data'" in output and "Running stage 'drift'" in output, output
    report = json.loads((project / "reports/drift/drift.json").read_text())
    assert report["skipped"].startswith("no reference configured"), report
    # when a reference is set with the command line and the stage runs again
    reference = tmp_path / "reference.csv"
    shutil.copyfile(project / "data/raw/test.csv", reference)
    subprocess.run(
        [sys.executable, "-m", "ml.cli", "drift-reference", str(reference)],
        cwd=project,
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
    )
    output = dvc(project, "repro", "drift")
    # then it compares the incoming train.csv with it: same generator, so no drift
    assert "Running stage 'drift'" in output, output
    report = json.loads((project / "reports/drift/drift.json").read_text())
    assert "skipped" not in report
    assert report["current"]["source"] == "data/raw/train.csv"
    assert report["current"]["usable"] > 3_000
    assert report["drifted"] is False, report["drifted_columns"]
    assert (project / "reports/drift/drift.html").read_text().startswith("<!doctype html>")
    # and a second run with nothing changed does not run the comparison again
    assert "Stage 'drift' didn't change, skipping" in dvc(project, "repro", "drift")
