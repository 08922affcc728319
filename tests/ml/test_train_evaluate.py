"""Training and evaluation: metrics from probabilities, the quality gate, determinism."""

from __future__ import annotations

import gc
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.artefact import METADATA_FILE, read_metadata, sha256_of
from ml.evaluate import (
    OVERRIDE_ENV,
    EvaluationError,
    GateError,
    apply_gate,
    aside,
    compute_metrics,
    evaluate,
)
from ml.progress import skip_exit_collection
from ml.train import choose_threshold
from tests.ml.conftest import read_json, run_pipeline, small_params


def test_metrics_come_from_probabilities_and_the_stored_threshold(trained):
    metrics = read_json(trained.reports_dir / "metrics.json")
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"):
        assert 0 <= metrics[key] <= (1 if key != "log_loss" else 10), key
    cm = metrics["confusion_matrix"]
    assert sum(cm.values()) == metrics["rows"] == 4_000
    assert metrics["threshold"] == read_metadata(trained.model_dir).threshold
    assert metrics["gate"]["passed"] is True


def test_synthetic_model_is_close_to_the_best_possible(trained):
    metrics = trained.metrics
    assert metrics["best_possible_roc_auc"] - metrics["roc_auc"] < 0.02, metrics
    assert metrics["roc_auc"] > 0.85


def test_plots_model_card_and_figures_are_written(trained):
    for name in ("roc", "precision_recall", "calibration"):
        assert (trained.reports_dir / "plots" / f"{name}.csv").read_text().count("\n") > 5
        png = (trained.reports_dir / "figures" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG"), name
    card = (trained.model_dir / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "## Limits" in card
    assert f"{trained.metrics['roc_auc']:.4f}" in card


def test_the_card_names_the_data_source_and_the_rows_the_fit_used(trained):
    card = (trained.model_dir / "MODEL_CARD.md").read_text()
    record = read_json(trained.model_dir / "training.json")
    # synthetic data is called synthetic, never customer data
    assert "synthetic rows from the project's generator" in card, card
    assert "not on customer data" in card and "historical customers" not in card, card
    assert f"the fit used {record['fit_rows']:,}" in card, card
    assert record["fit_rows"] < record["training_data"]["rows"] == 16_000
    assert "Test rows also in the training file: 0 by id" in card, card


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_metrics_files_hold_numbers_not_sentences(trained):
    # `dvc metrics show` prints one column per value: sentences and per-column counts widen it
    # by hundreds of characters, so they live in evaluation.json and validation_details.json.
    for name in ("metrics.json", "validation.json"):
        flat = _flatten(read_json(trained.reports_dir / name))
        texts = {k: v for k, v in flat.items() if not isinstance(v, int | float | None)}
        assert all(isinstance(v, str) and len(v) <= 32 for v in texts.values()), (name, texts)
        assert len(flat) <= 45, f"{name}: {len(flat)} columns"
    full = read_json(trained.reports_dir / "evaluation.json")
    assert full["gate"]["reasons"] == [] and "synthetic" in full["data"]["source"]


def test_compute_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    metrics = compute_metrics(y, p, threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert metrics["precision"] == metrics["recall"] == 0.5


def test_threshold_maximises_f1_on_held_out_rows():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    assert choose_threshold(y, p, beta=1.0) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("roc_auc", "champion", "passed", "reason"),
    [
        (0.86, None, True, None),
        (0.79, None, False, "below the minimum 0.8000"),
        (0.86, 0.864, True, None),
        (0.86, 0.87, False, "more than 0.0050 below the champion's 0.8700"),
    ],
)
def test_gate_rules(roc_auc, champion, passed, reason, monkeypatch):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    params = small_params().evaluate.model_copy(update={"min_roc_auc": 0.8, "max_auc_drop": 0.005})
    gate = apply_gate(roc_auc, params, champion)
    assert gate.passed is passed
    assert (reason in " ".join(gate.reasons)) if reason else not gate.reasons


def _copy_run(trained, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(trained.model_dir, models)
    (models / METADATA_FILE).unlink()
    return models


def test_a_model_below_the_gate_is_not_published(trained, tmp_path, monkeypatch):
    # given a trained model and a gate it cannot pass
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    models = _copy_run(trained, tmp_path)
    params = small_params().evaluate.model_copy(update={"min_roc_auc": 0.99})
    # when it is evaluated
    with pytest.raises(GateError, match=r"ROC AUC 0\.\d+ is below the minimum 0\.9900.*"):
        evaluate(
            models,
            trained.validated_dir / "test.csv",
            trained.raw_dir / "truth.csv",
            params,
            reports_dir=tmp_path / "reports",
        )
    # then no model.json: nothing downstream can serve or publish it
    assert not (models / METADATA_FILE).exists()
    assert read_json(tmp_path / "reports" / "metrics.json")["gate"]["passed"] is False


def test_a_champion_drop_fails_the_gate(trained, tmp_path, monkeypatch):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    models = _copy_run(trained, tmp_path)
    with pytest.raises(GateError, match="below the champion's 0.9990"):
        evaluate(
            models,
            trained.validated_dir / "test.csv",
            trained.raw_dir / "truth.csv",
            small_params().evaluate,
            reports_dir=tmp_path / "r",
            champion_roc_auc=0.999,
        )


def test_the_documented_override_publishes_and_records_why(trained, tmp_path, monkeypatch):
    monkeypatch.setenv(OVERRIDE_ENV, "new data source, champion not comparable")
    models = _copy_run(trained, tmp_path)
    params = small_params().evaluate.model_copy(update={"min_roc_auc": 0.99})
    metrics = evaluate(
        models,
        trained.validated_dir / "test.csv",
        trained.raw_dir / "truth.csv",
        params,
        reports_dir=tmp_path / "reports",
    )
    assert metrics["gate"]["overridden_because"] == "new data source, champion not comparable"
    assert (models / METADATA_FILE).exists()
    assert "accepted anyway: new data source" in (models / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_same_seed_same_data_gives_the_same_model_and_metrics(trained, tmp_path):
    # when the pipeline runs again from scratch with the same params
    again = run_pipeline(tmp_path, small_params())
    # then data, model and metrics are identical
    for name in ("train.csv", "test.csv"):
        assert sha256_of(again.raw_dir / name) == sha256_of(trained.raw_dir / name)
    for name in ("model.npz", "model.skops"):
        assert sha256_of(again.model_dir / name) == sha256_of(trained.model_dir / name), (
            f"{name} is not byte-reproducible"
        )
    assert again.metrics == trained.metrics


def _write_pid(path: Path) -> None:
    path.write_text(str(os.getpid()))


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)


@pytest.mark.skipif(sys.platform != "linux", reason="figures are drawn aside where fork is used")
def test_work_set_aside_runs_in_another_process_meanwhile_and_its_failure_is_raised(tmp_path):
    # given work set aside while the body runs
    marker = tmp_path / "pid"
    with aside(_write_pid, marker) as work:
        body_pid = os.getpid()
        work.wait()
        # then it ran, in another process, and wait() waited for it
        assert marker.is_file(), "wait() returned before the work was done"
    assert int(marker.read_text()) != body_pid
    # and leaving waits too
    marker.unlink()
    with aside(_write_pid, marker):
        pass
    assert marker.is_file(), "the work was waited for before leaving"
    # and its exception, or its process dying, fails the caller
    with pytest.raises(ValueError, match="no figure"), aside(_fail, "no figure"):
        pass
    with pytest.raises(EvaluationError, match="_die died in its process"), aside(_die):
        pass


def test_a_finished_stage_leaves_its_objects_out_of_the_exit_collection():
    try:
        skip_exit_collection()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
