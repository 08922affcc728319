"""The minimal script `make bench` times the pipeline against: read the raw files, clean them,
fit and score the same estimator, nothing else (no validation, reports, compilation or DVC).

    python -m ml.minimal_baseline data/raw
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from ml.params import load_params

CODES = {
    "Gender": {"Female": 0, "Male": 1},
    "VehicleAge": {"< 1 Year": 0, "1-2 Year": 1, "> 2 Years": 2},
    "PastAccident": {"No": 0, "Yes": 1},
}
COLUMNS = ["RegionID", "SalesChannelID", "Gender", "Age", "HasDrivingLicense", "Switch",
           "VehicleAge", "PastAccident", "AnnualPremium", "DaysSinceCreated"]  # fmt: skip


def clean(frame: pd.DataFrame) -> np.ndarray:
    """Blank -> NaN, labels -> codes, "£1,623.85 " -> 1623.85, "69.0" -> 69."""
    out = pd.DataFrame(index=frame.index)
    for name in COLUMNS:
        text = frame[name].str.strip().replace("", None)
        if name in CODES:
            out[name] = text.map(CODES[name])
        elif name == "AnnualPremium":
            out[name] = pd.to_numeric(text.str.replace(r"[£,]", "", regex=True))
        else:
            out[name] = pd.to_numeric(text)
    return out.to_numpy(dtype=np.float64)


def main() -> None:
    started = time.perf_counter()
    raw = Path(sys.argv[1])
    params = load_params().train
    read = {
        n: pd.read_csv(raw / n, dtype=str, keep_default_na=False) for n in ("train.csv", "test.csv")
    }
    train_x, test_x = clean(read["train.csv"]), clean(read["test.csv"])
    model = HistGradientBoostingClassifier(
        **params.hgb.model_dump(), categorical_features=[0, 1], early_stopping=True,
        random_state=params.seed,
    )  # fmt: skip
    model.fit(train_x, read["train.csv"]["Result"].astype(int))
    auc = roc_auc_score(read["test.csv"]["Result"].astype(int), model.predict_proba(test_x)[:, 1])
    print(f"minimal baseline: ROC AUC {auc:.4f}, {model.n_iter_} trees, "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
