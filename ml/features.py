"""Cleaning raw columns into the model's numbers, and the scikit-learn step that does it.

`clean_column` applies the contract's per-value cleaning once per distinct value of a column (raw
files repeat values heavily), so it is fast and is exactly the function that serving applies to a
request. `RawFeatureCleaner` is the first step of the fitted pipeline: whatever reaches the model,
in training or in serving, was cleaned by it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ml.contract import FEATURE_NAMES, FEATURES, ID_COLUMN, TARGET, ContractError, Feature


def read_validated(
    path: Path, *, with_ids: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Rows written by the validate stage: all columns, the raw text features (as categories of
    the raw text, which repeats heavily), the 0/1 label. Without ids (training needs none) the
    id column, unique per row and the costliest to hold, is not read at all."""
    columns = [*([ID_COLUMN] if with_ids else []), *FEATURE_NAMES, TARGET]
    dtypes = {name: "category" for name in columns} | {ID_COLUMN: str}
    frame = pd.read_csv(path, usecols=columns, dtype=dtypes, keep_default_na=False, na_values=[])
    labels = frame[TARGET].astype(str).astype(int).to_numpy()
    return frame, frame[list(FEATURE_NAMES)], labels


def clean_column(feature: Feature, column: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Clean one raw column: (numbers with NaN for unknown, reason per row or None when valid)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Files are read as categories (ml.validate.read_raw_csv): clean each category once and
        # spread the results by code, without building a Python object per cell.
        categories = list(column.cat.categories)
        values, reasons = _clean_values(feature, categories)
        codes = column.cat.codes.to_numpy()
        numbers = np.append(np.array(values, dtype=np.float64), np.nan)[codes]
        labels = np.array([*reasons, None], dtype=object)[codes]
        return numbers, pd.Series(labels, index=column.index, dtype=object)
    distinct = list(pd.unique(column))
    values, reasons = _clean_values(feature, distinct)
    numbers = column.map(dict(zip(distinct, values, strict=True)))
    return (
        numbers.to_numpy(dtype=np.float64, na_value=np.nan),
        column.map(dict(zip(distinct, reasons, strict=True))),
    )


def _clean_values(feature: Feature, raw_values: list) -> tuple[list[float], list[str | None]]:
    values: list[float] = []
    reasons: list[str | None] = []
    for raw in raw_values:
        try:
            values.append(feature.clean_value(raw))
            reasons.append(None)
        except ContractError as error:
            values.append(math.nan)
            reasons.append(error.reason)
    return values, reasons


class RawFeatureCleaner(TransformerMixin, BaseEstimator):
    """Turns a frame of raw columns (text as in the CSV) into the model's numeric matrix.

    Stateless: the contract fixes every mapping, so fitting learns nothing and training and serving
    cannot disagree. A value that breaks the contract raises ContractError naming the column.
    """

    def fit(self, frame: pd.DataFrame, y: object = None) -> RawFeatureCleaner:
        self.n_features_in_ = len(FEATURES)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f.name for f in FEATURES if f.name not in frame.columns]
        if missing:
            raise ContractError(", ".join(missing), None, "column missing from the input")
        matrix = np.empty((len(frame), len(FEATURES)), dtype=np.float64)
        for j, feature in enumerate(FEATURES):
            numbers, reasons = clean_column(feature, frame[feature.name])
            bad = reasons.notna().to_numpy()
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ContractError(
                    feature.name, frame[feature.name].iloc[first], reasons.iloc[first]
                )
            matrix[:, j] = numbers
        return matrix

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f.name for f in FEATURES], dtype=object)
