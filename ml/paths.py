"""Where the pipeline's stages read and write, written once (dvc.yaml names the same paths).

A module of constants only: importing it costs nothing, so `ml.run` and the CLI can name the
pipeline's files without importing pandas or scikit-learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

RAW_DIR: Final = Path("data/raw")
TRAIN_FILE: Final = "train.csv"
TEST_FILE: Final = "test.csv"
TRUTH_FILE: Final = "truth.csv"  # synthetic only: id, true_probability of the test rows
SOURCE_FILE: Final = "SOURCE.json"  # where the raw files came from, with their md5

VALIDATED_DIR: Final = Path("data/validated")
REPORTS_DIR: Final = Path("reports")
VALIDATION_REPORT: Final = REPORTS_DIR / "validation.json"
# Counts by column and reason: too wide for `dvc metrics show`, so a plain output beside it.
VALIDATION_DETAILS: Final = REPORTS_DIR / "validation_details.json"

MODEL_DIR: Final = Path("models")
TRAINING_RECORD: Final = "training.json"

METRICS: Final = "metrics.json"
METRICS_FILE: Final = REPORTS_DIR / METRICS
