"""`make run`'s job (python -m ml.run) in a fresh copy: pipeline, push, then the real service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from ml.bench import copy_project, set_rows
from ml.run import SAMPLE_REQUEST
from tests.conftest import REPO_ROOT
from tests.service.conftest import LiveServer, free_port, stop, wait_until_serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_run_trains_pushes_and_serves_the_model_it_trained(tmp_path):
    # given a fresh copy of the project with a small synthetic dataset
    project = tmp_path / "predict-buy"
    copy_project(project, REPO_ROOT)
    set_rows(project / "params.yaml", 12_000, 3_000)
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREDICT_BUY_") and key not in ("PYTHONPATH", "WEB_CONCURRENCY")
    }
    environment["PREDICT_BUY_PORT"] = str(port)
    log = tmp_path / "run.log"
    # when `make run`'s command runs
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "ml.run"],
            cwd=project,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_serving(server, deadline_s=600)
        # then the service answers the original API with the model the pipeline published
        metadata = json.loads((project / "models" / "model.json").read_text())
        answer = httpx.post(f"{server.base_url}/predict", json=SAMPLE_REQUEST, timeout=5)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predicted_class"] in (0, 1)
        assert body["model_version"] == metadata["version"]
        assert body["threshold"] == pytest.approx(metadata["threshold"])
        described = httpx.get(f"{server.base_url}/model", timeout=5).json()
        assert described["sha256"] == metadata["artefacts"]["compiled"]["sha256"], described
        # and it pushed to the default remote and told the user how to call the service
        pushed = [p for p in (project / ".dvc-storage").rglob("*") if p.is_file()]
        assert len(pushed) >= 5, "dvc push to the default remote"
        output = log.read_text()
        assert f"curl -s http://127.0.0.1:{port}/predict" in output, output
        assert '"AnnualPremium": "£1,623.85 "' in output, "a curl command to paste as it is"
        assert "roc_auc" in output
    finally:
        stop(process)
