"""The champion: the last model that passed the gate, fetched from its revision and re-scored."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ml.artefact import METADATA_FILE
from ml.champion import find_champion
from ml.evaluate import OVERRIDE_ENV, GateError, evaluate
from tests.ml.conftest import small_params


def git(root: Path, *arguments: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    completed = subprocess.run(
        ["git", *identity, *arguments], cwd=root, check=True, capture_output=True, text=True
    )
    return completed.stdout.strip()


def publish(root: Path, roc_auc: float, passed: bool, npz_md5: str, test_md5: str = "0" * 32):
    """Commit a run's metrics and dvc.lock, as `git commit` after `dvc repro` does."""
    metrics = {"roc_auc": roc_auc, "gate": {"passed": passed}, "test_file_md5": test_md5}
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / "metrics.json").write_text(json.dumps(metrics))
    lock = {"schema": "2.0", "stages": {"train": {"outs": [
        {"path": "models/model.npz", "md5": npz_md5, "size": 1}]}}}  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"model {roc_auc} passed={passed}")
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def history(trained, tmp_path):
    """A repository whose champion (the trained model, in the DVC cache) claims ROC AUC 0.999,
    followed by a failed run's metrics committed on top."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    content = (trained.model_dir / "model.npz").read_bytes()
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    champion = publish(root, 0.999, True, md5)
    publish(root, 0.51, False, "f" * 32)  # a failed run, committed all the same
    return root, champion


def _evaluate(trained, tmp_path, champion):
    models = tmp_path / "models"
    shutil.copytree(trained.model_dir, models, dirs_exist_ok=True)
    (models / METADATA_FILE).unlink()
    return evaluate(
        models,
        trained.validated_dir / "test.csv",
        trained.raw_dir / "truth.csv",
        small_params().evaluate,
        reports_dir=tmp_path / "reports",
        champion=champion,
        raw_dir=trained.raw_dir,
    )


def test_a_committed_failed_run_does_not_become_the_champion(history):
    # given a passed model, then a failed run's metrics committed on top
    root, champion_revision = history
    # when
    champion = find_champion(root)
    # then the champion is the model that passed, with its model fetched from the DVC cache
    assert champion is not None and champion.revision == champion_revision
    assert champion.recorded_roc_auc == 0.999
    assert champion.model is not None, champion.missing_because


def test_the_champion_is_re_scored_on_the_same_test_file(history, trained, tmp_path, monkeypatch):
    # given a champion whose recorded 0.999 came from another test file
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    champion = find_champion(history[0])
    # when the same model is evaluated as challenger
    metrics = _evaluate(trained, tmp_path, champion)
    # then both are scored on this test file: equal, so the gate passes
    assert metrics["champion"]["roc_auc"] == pytest.approx(metrics["roc_auc"], abs=1e-12)
    assert metrics["champion"]["recorded_roc_auc"] == 0.999
    assert "re-scored on this test file" in metrics["champion"]["comparison"]
    assert metrics["gate"]["passed"] is True
    assert len(metrics["test_file_md5"]) == 32
    card = (tmp_path / "models" / "MODEL_CARD.md").read_text()
    assert f"| challenger (this model) | {metrics['roc_auc']:.4f} |" in card, card
    assert metrics["test_file_md5"] in card


def test_without_its_model_the_champion_counts_only_on_the_same_test_file(
    history, trained, tmp_path, monkeypatch
):
    # given the champion's model is in no cache and no remote
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    monkeypatch.setattr("ml.champion.shutil.which", lambda name: None)  # no dvc to fetch with
    root, _ = history
    shutil.rmtree(root / ".dvc" / "cache")
    champion = find_champion(root)
    assert champion is not None and champion.model is None
    # when its recorded ROC AUC was measured on another test file: no comparison, said so
    metrics = _evaluate(trained, tmp_path, champion)
    assert metrics["champion"]["roc_auc"] is None
    assert metrics["champion"]["comparison"].startswith("not compared")
    # when it was measured on this very test file: its recorded 0.999 is the bar
    same = champion.__class__(champion.revision, 0.999, metrics["test_file_md5"], None, "gone")
    with pytest.raises(GateError, match="below the champion's 0.9990"):
        _evaluate(trained, tmp_path / "again", same)


def test_no_git_history_means_no_champion(tmp_path):
    assert find_champion(tmp_path) is None
