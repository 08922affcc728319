"""Hand-made compiled models for service tests and benchmarks (no training pipeline needed).

`write_model_dir` writes model.npz and a model.json with the correct sha256, exactly the layout the
training pipeline produces. The tables are chosen so that answers are predictable:
PastAccident "Yes" pushes the score up by 3, "No" down by 3, unknown leaves it at 0; the other
features add small seeded noise of the realistic table sizes a trained model has.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ml.artefact import (
    COMPILED_FILE,
    ModelMetadata,
    TrainingData,
    describe_file,
    write_metadata,
)
from ml.compiled import CompiledModel, FeatureBins, GroupTable, group_strides
from ml.contract import FEATURE_NAMES, FEATURES, FeatureKind, describe

MODEL_VERSION = "0.1.0-test+fixture"
THRESHOLD = 0.5
PAST_ACCIDENT_EFFECT = 3.0


def _edges(index: int) -> tuple[float, ...]:
    feature = FEATURES[index]
    if feature.kind is FeatureKind.CATEGORY:
        return tuple(i + 0.5 for i in range(len(feature.categories) - 1))
    low, high = feature.bounds
    if feature.kind is FeatureKind.INTEGER and high - low <= 200:
        return tuple(float(v) + 0.5 for v in range(int(low), int(high)))
    return tuple(float(v) for v in np.linspace(low, high, 256)[1:-1])


def build_model(seed: int = 7, noise: float = 0.3) -> CompiledModel:
    """A compiled model with trained-model-sized tables and a known PastAccident effect."""
    rng = np.random.default_rng(seed)
    bins = [FeatureBins(_edges(j)) for j in range(len(FEATURES))]
    past_accident = FEATURE_NAMES.index("PastAccident")
    age, gender = FEATURE_NAMES.index("Age"), FEATURE_NAMES.index("Gender")
    members: list[tuple[int, ...]] = [(gender, age)]
    members += [(j,) for j in range(len(FEATURES)) if j not in (gender, age, past_accident)]
    groups = []
    for features in members:
        size = math.prod(bins[f].n_bins for f in features)
        table = rng.normal(0.0, noise / len(members), size)
        groups.append(GroupTable(features, group_strides(bins, features), table))
    # PastAccident's bins: 0 = "No", 1 = "Yes", 2 = unknown.
    accident = np.array([-PAST_ACCIDENT_EFFECT, PAST_ACCIDENT_EFFECT, 0.0])
    groups.append(GroupTable((past_accident,), (1,), accident))
    return CompiledModel(0.0, bins, groups)


def write_model_dir(model_dir: Path, model: CompiledModel | None = None) -> Path:
    """Write model.npz and model.json (correct sha256, this numpy's version) into model_dir."""
    model_dir.mkdir(parents=True, exist_ok=True)
    compiled_path = model_dir / COMPILED_FILE
    (model or build_model()).save(compiled_path)
    metadata = ModelMetadata(
        version=MODEL_VERSION,
        created_at="2026-11-26T12:00:00Z",
        artefacts={"compiled": describe_file(compiled_path)},
        training_data=TrainingData(path="data/prepared/train.csv", md5="0" * 32, rows=1000),
        params={"max_iter": 200, "learning_rate": 0.1},
        metrics={"roc_auc": 0.85, "f1": 0.42},
        threshold=THRESHOLD,
        library_versions={"numpy": np.__version__},
        feature_contract=describe(),
    )
    write_metadata(model_dir, metadata)
    return model_dir


def sample_requests(count: int, seed: int = 11) -> list[dict[str, object]]:
    """Valid, varied `POST /predict` bodies: every feature kind, unknowns, currency text."""
    rng = np.random.default_rng(seed)
    bodies: list[dict[str, object]] = []
    for i in range(count):
        body: dict[str, object] = {}
        for feature in FEATURES:
            optional = not feature.in_original_api
            if optional and rng.random() < 0.3:
                continue  # absent: unknown
            if rng.random() < 0.1:
                body[feature.name] = None  # null: unknown
            elif feature.kind is FeatureKind.CATEGORY:
                body[feature.name] = str(rng.choice(feature.categories))
            elif feature.kind is FeatureKind.INTEGER:
                low, high = feature.bounds
                value = int(rng.integers(int(low), int(high) + 1))
                body[feature.name] = float(value) if i % 3 == 0 else value
            else:
                amount = round(float(rng.uniform(2_000, 60_000)), 2)
                body[feature.name] = f"£{amount:,.2f} " if i % 2 else amount
        bodies.append(body)
    return bodies
