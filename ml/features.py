"""Cleaning raw columns into the model's numbers, and the scikit-learn step that does it.

`clean_column` (ml/cleaning.py, re-exported here) applies the contract's per-value cleaning once per
distinct value of a column (raw files repeat values heavily), so it is fast and is exactly the
function that serving applies to a request. `RawFeatureCleaner` is the first step of the fitted
pipeline: whatever reaches the model, in training or in serving, was cleaned by it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sklearn.base import BaseEstimator, TransformerMixin

from ml.cleaning import clean_column
from ml.contract import FEATURE_NAMES, FEATURES, ID_COLUMN, TARGET, ContractError

__all__ = ["RawFeatureCleaner", "clean_column", "read_validated"]


def read_validated(
    path: Path, *, with_ids: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Rows written by the validate stage: all columns, the raw text features (as categories of
    the raw text, which repeats heavily), the 0/1 label. Without ids (training needs none) the
    id column, unique per row and the costliest to hold, is not read at all."""
    columns = [*([ID_COLUMN] if with_ids else []), *FEATURE_NAMES, TARGET]
    # Read by Arrow's CSV reader (on every core: twice as fast as pandas' here), each column
    # dictionary-encoded, which to_pandas turns into categories; the cells are text as written.
    types = {name: pa.dictionary(pa.int32(), pa.string()) for name in columns}
    types[ID_COLUMN] = pa.string()
    options = pacsv.ConvertOptions(
        include_columns=columns,
        column_types=types,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    # A usable amount may hold a line end (" £1,000\n" is £1,000): split blocks with quotes in mind.
    parse = pacsv.ParseOptions(newlines_in_values=True)
    frame = pacsv.read_csv(path, parse_options=parse, convert_options=options).to_pandas()
    labels = frame[TARGET].astype(str).astype(int).to_numpy()
    return frame, frame[list(FEATURE_NAMES)], labels


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
