"""Fixtures of the training-pipeline tests: small synthetic datasets and one trained model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml.data import fetch_raw_data
from ml.evaluate import evaluate
from ml.params import Params, load_params
from ml.train import train
from ml.validate import run as validate
from tests.conftest import REPO_ROOT


def small_params(train_rows: int = 16_000, test_rows: int = 4_000, seed: int = 7) -> Params:
    """The repository's params.yaml with a small synthetic dataset."""
    params = load_params(REPO_ROOT / "params.yaml")
    synthetic = params.data.synthetic.model_copy(
        update={"train_rows": train_rows, "test_rows": test_rows, "seed": seed}
    )
    data = params.data.model_copy(update={"source": "synthetic", "synthetic": synthetic})
    return params.model_copy(update={"data": data})


@dataclass(frozen=True)
class PipelineRun:
    root: Path
    raw_dir: Path
    validated_dir: Path
    model_dir: Path
    reports_dir: Path
    metrics: dict


def run_pipeline(root: Path, params: Params, champion: float | None = None) -> PipelineRun:
    """data -> validate -> train -> evaluate, as the DVC stages do, inside root."""
    raw, validated, models, reports = (root / p for p in ("raw", "validated", "models", "reports"))
    fetch_raw_data(params.data, raw)
    validate(raw, validated, reports / "validation.json")
    train(validated / "train.csv", models, params.train)
    metrics = evaluate(
        models,
        validated / "test.csv",
        raw / "truth.csv",
        params.evaluate,
        reports_dir=reports,
        champion_roc_auc=champion,
    )
    return PipelineRun(root, raw, validated, models, reports, metrics)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """One small model trained end to end, shared by the tests that only read it."""
    return run_pipeline(tmp_path_factory.mktemp("pipeline"), small_params())


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
