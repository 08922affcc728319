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
import re
import tempfile
import tomllib
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Final
from zipfile import ZIP_STORED, ZipFile, ZipInfo

import numpy as np
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
from ml.contract import FEATURES
from ml.features import RawFeatureCleaner, read_validated
from ml.params import TrainParams, load_params
from ml.paths import MODEL_DIR, TRAIN_FILE, TRAINING_RECORD, VALIDATED_DIR
from ml.progress import say, skip_exit_collection, step

LIBRARIES: Final = ("numpy", "scikit-learn", "skops", "pandas")


PYPROJECT: Final = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_version(pyproject: Path = PYPROJECT) -> str:
    """The project's version: the one source for model, package and image versions."""
    return tomllib.loads(pyproject.read_text())["project"]["version"]


def library_versions() -> dict[str, str]:
    versions = {name: importlib_metadata.version(name) for name in LIBRARIES}
    versions["python"] = platform.python_version()
    return versions


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


# skops names its entries and memo ids after the objects' memory addresses, and stamps the time.
_SKOPS_ID = re.compile(r'("__id__": |"file": ")(\d+)')
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def reproducible_skops(data: bytes) -> bytes:
    """The same skops file with ids numbered in order of appearance and a fixed timestamp, so the
    same model gives the same bytes (and the same sha256 and version) on every run."""
    with ZipFile(io.BytesIO(data)) as source:
        schema = source.read("schema.json").decode()
        numbers: dict[str, str] = {}

        def renumber(match: re.Match[str]) -> str:
            new = numbers.setdefault(match.group(2), str(len(numbers) + 1))
            return match.group(1) + new

        schema = _SKOPS_ID.sub(renumber, schema)
        out = io.BytesIO()
        with ZipFile(out, "w", compression=ZIP_STORED) as target:
            for entry in source.infolist():
                if entry.filename == "schema.json":
                    continue
                stem = entry.filename.removesuffix(".npy")
                name = f"{numbers[stem]}.npy" if stem in numbers else entry.filename
                target.writestr(ZipInfo(name, _EPOCH), source.read(entry))
            target.writestr(ZipInfo("schema.json", _EPOCH), schema)
    return out.getvalue()


def save_skops(pipeline: Pipeline, path: Path) -> None:
    """Save the pipeline in skops format, byte-reproducibly."""
    buffer = io.BytesIO()
    sio.dump(pipeline, buffer)
    write_atomic(path, reproducible_skops(buffer.getvalue()))


def train(train_csv: Path, model_dir: Path, params: TrainParams) -> dict[str, object]:
    """Fit, choose the threshold, compile and save; returns the training record."""
    features, labels = read_validated(train_csv, with_ids=False)[1:]
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
    held_matrix = pipeline[0].transform(held_x)
    held_probability = pipeline[-1].predict_proba(held_matrix)[:, 1]
    threshold = choose_threshold(held_y, held_probability, params.threshold_beta)
    held_auc = float(roc_auc_score(held_y, held_probability))
    say("train", f"{pipeline[-1].n_iter_} trees; held-out ROC AUC {held_auc:.4f}; "
                 f"threshold {threshold:.4f}")  # fmt: skip
    with step("train", "compiling the serving tables and checking they match the model"):
        compiled, difference = compile_pipeline(
            pipeline,
            interaction_partition(params.interaction_groups),
            held_matrix,
            seed=params.seed,
            check_probability=held_probability,
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
        # The rest of the training file chose the threshold; early stopping holds out a share of
        # these rows again (HistGradientBoosting's validation_fraction).
        "fit_rows": len(fit_y),
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
    say("train", f"start: {VALIDATED_DIR / TRAIN_FILE} -> {MODEL_DIR}/")
    train(VALIDATED_DIR / TRAIN_FILE, MODEL_DIR, load_params().train)


if __name__ == "__main__":
    main()
    skip_exit_collection()
