"""Train stage: fit the pipeline (contract cleaning + gradient-boosted trees) on the validated
training rows, choose the decision threshold on a held-out share, compile the serving tables, and
save the artefacts.

The model is a HistGradientBoosting classifier: it handles unknown values natively, treats region
and sales channel as categories, and its trees are constrained to disjoint groups of features so
the fitted model compiles exactly into lookup tables for serving (ml/compile.py).
"""

from __future__ import annotations

import io
import json
import platform
import tempfile
import tomllib
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from ml.artefact import (
    COMPILED_FILE,
    PIPELINE_FILE,
    describe_file,
    md5_of,
    write_atomic,
)
from ml.compile import compile_pipeline, interaction_partition
from ml.contract import FEATURE_NAMES, FEATURES, TARGET
from ml.features import RawFeatureCleaner
from ml.params import TrainParams, load_params
from ml.progress import say, step
from ml.validate import VALIDATED_DIR

MODEL_DIR: Final = Path("models")
TRAINING_RECORD: Final = "training.json"
LIBRARIES: Final = ("numpy", "scikit-learn", "skops", "pandas")


PYPROJECT: Final = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_version(pyproject: Path = PYPROJECT) -> str:
    """The project's version: the one source for model, package and image versions."""
    return tomllib.loads(pyproject.read_text())["project"]["version"]


def library_versions() -> dict[str, str]:
    versions = {name: importlib_metadata.version(name) for name in LIBRARIES}
    versions["python"] = platform.python_version()
    return versions


def read_validated(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Rows written by the validate stage: all columns, the raw text features, the 0/1 label."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    return frame, frame[list(FEATURE_NAMES)], frame[TARGET].astype(int).to_numpy()


def build_pipeline(params: TrainParams) -> Pipeline:
    nominal = [j for j, f in enumerate(FEATURES) if f.nominal]
    model = HistGradientBoostingClassifier(
        **params.hgb.model_dump(),
        categorical_features=nominal,
        interaction_cst=interaction_partition(params.interaction_groups),
        early_stopping=True,
        random_state=params.seed,
    )
    return Pipeline([("clean", RawFeatureCleaner()), ("model", model)])


def choose_threshold(y_true: np.ndarray, probability: np.ndarray, beta: float) -> float:
    """The probability cut that maximises F-beta on held-out rows."""
    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    precision, recall = precision[:-1], recall[:-1]
    denominator = beta**2 * precision + recall
    score = np.divide(
        (1 + beta**2) * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(thresholds[int(np.argmax(score))])


def save_skops(pipeline: Pipeline, path: Path) -> None:
    buffer = io.BytesIO()
    sio.dump(pipeline, buffer)
    write_atomic(path, buffer.getvalue())


def train(train_csv: Path, model_dir: Path, params: TrainParams) -> dict[str, object]:
    """Fit, choose the threshold, compile and save; returns the training record."""
    _, features, labels = read_validated(train_csv)
    fit_x, held_x, fit_y, held_y = train_test_split(
        features,
        labels,
        test_size=params.validation_fraction,
        stratify=labels,
        random_state=params.seed,
    )
    pipeline = build_pipeline(params)
    with step("train", f"fitting gradient-boosted trees on {len(fit_x):,} rows"):
        pipeline.fit(fit_x, fit_y)
    held_probability = pipeline.predict_proba(held_x)[:, 1]
    threshold = choose_threshold(held_y, held_probability, params.threshold_beta)
    held_auc = float(roc_auc_score(held_y, held_probability))
    say("train", f"{pipeline[-1].n_iter_} trees; held-out ROC AUC {held_auc:.4f}; "
                 f"threshold {threshold:.4f}")  # fmt: skip
    with step("train", "compiling the serving tables and checking they match the model"):
        compiled, difference = compile_pipeline(
            pipeline,
            interaction_partition(params.interaction_groups),
            pipeline[0].transform(held_x),
            seed=params.seed,
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    save_skops(pipeline, model_dir / PIPELINE_FILE)
    with tempfile.TemporaryDirectory(dir=model_dir) as scratch:
        staged = Path(scratch) / COMPILED_FILE
        compiled.save(staged)
        staged.replace(model_dir / COMPILED_FILE)
    record = {
        "version": project_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "artefacts": {
            "pipeline": describe_file(model_dir / PIPELINE_FILE).model_dump(),
            "compiled": describe_file(model_dir / COMPILED_FILE).model_dump(),
        },
        "training_data": {"path": str(train_csv), "md5": md5_of(train_csv), "rows": len(labels)},
        "params": params.model_dump(),
        "threshold": threshold,
        "validation": {
            "rows": len(held_y),
            "roc_auc": held_auc,
            "compiled_max_difference": difference,
            "trees": int(pipeline[-1].n_iter_),
        },
        "library_versions": library_versions(),
    }
    write_atomic(model_dir / TRAINING_RECORD, json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    train(VALIDATED_DIR / "train.csv", MODEL_DIR, load_params().train)


if __name__ == "__main__":
    main()
