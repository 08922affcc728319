"""Turns validated requests into predictions with the compiled model (numpy only, no pandas).

One row goes through the contract's `clean_value` for each field (what `clean_row` does) and the
model's bin of the cleaned value, memoised together per distinct value because requests repeat the
same few labels and ages, then through the model's pure-Python table lookups: ~3 µs in all, less
than parsing the request's JSON.

Many rows are cleaned column by column: a category column maps each distinct label once through
the contract's `clean_value` (as training cleans a column); a numeric column is already clean,
because the request model checked it against the contract's ranges and parsed AnnualPremium with
`clean_value`, so it only becomes a float array (null: NaN). The matrix is then scored with the
model's vectorised path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from ml.artefact import ModelMetadata
from ml.compiled import CompiledModel
from ml.contract import FEATURES, FeatureKind

# Distinct values remembered per feature: every category and integer fits; amounts vary more.
CLEANING_CACHE_SIZE: Final = 4096


@dataclass(frozen=True)
class Predictor:
    """The served model with its decision threshold and identity."""

    model: CompiledModel
    metadata: ModelMetadata
    _cleaning: tuple[tuple[str, Callable[[object], float]], ...] = field(
        init=False, repr=False, compare=False
    )
    _binning: tuple[tuple[str, Callable[[object], int]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # The contract's own parser per feature, cached: same answers, a dict lookup on a hit.
        cleaning = tuple(
            (f.name, lru_cache(maxsize=CLEANING_CACHE_SIZE)(f.clean_value)) for f in FEATURES
        )
        object.__setattr__(self, "_cleaning", cleaning)
        # And the model's bin of each cleaned value, cached the same way: one lookup per field.
        binning = tuple(
            (name, lru_cache(maxsize=CLEANING_CACHE_SIZE)(_bin_of_cleaned(bins.bin_of, clean)))
            for (name, clean), bins in zip(cleaning, self.model.bins, strict=True)
        )
        object.__setattr__(self, "_binning", binning)

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def sha256(self) -> str:
        return self.metadata.artefacts["compiled"].sha256

    def predict_one(self, record: dict[str, object]) -> tuple[int, float]:
        """(predicted class, probability of class 1) for one validated record.

        The same numbers as `ml.contract.clean_row(record)`, from the same `clean_value`.
        """
        bins = [bin_of(record.get(name)) for name, bin_of in self._binning]
        probability = self.model.predict_proba_of_bins(bins)
        return int(probability >= self.metadata.threshold), probability

    def predict_many(
        self, records: Sequence[Mapping[str, object]]
    ) -> tuple[list[int], list[float]]:
        """Predicted classes and probabilities for many records, in their order."""
        probabilities = self.model.predict_proba(clean_matrix(records))
        classes = (probabilities >= self.metadata.threshold).astype(np.int64)
        return classes.tolist(), probabilities.tolist()

    # -- explanations: exact, since the model's log-odds are a sum of one term per group --------
    @property
    def base_value(self) -> float:
        """The log-odds of a customer about whom nothing is known."""
        return self.model.intercept

    def explain_one(self, record: dict[str, object]) -> tuple[int, float, dict[str, float]]:
        """`predict_one` plus each feature group's contribution to the log-odds."""
        values = [clean(record.get(name)) for name, clean in self._cleaning]
        probability = self.model.predict_proba_one(values)
        terms = self.model.contributions_one(values)
        contributions = dict(zip(self.model.group_names, terms, strict=True))
        return int(probability >= self.metadata.threshold), probability, contributions

    def explain_many(
        self, records: Sequence[Mapping[str, object]]
    ) -> tuple[list[int], list[float], list[dict[str, float]]]:
        """`predict_many` plus each row's contributions per feature group."""
        matrix = clean_matrix(records)
        probabilities = self.model.predict_proba(matrix)
        classes = (probabilities >= self.metadata.threshold).astype(np.int64)
        names = self.model.group_names
        contributions = [
            dict(zip(names, row, strict=True)) for row in self.model.contributions(matrix).tolist()
        ]
        return classes.tolist(), probabilities.tolist(), contributions


def _bin_of_cleaned(
    bin_of: Callable[[float], int], clean: Callable[[object], float]
) -> Callable[[object], int]:
    def bin_of_value(value: object) -> int:
        return bin_of(clean(value))

    return bin_of_value


def clean_matrix(records: Sequence[Mapping[str, object]]) -> np.ndarray:
    """The (n_rows, n_features) matrix of cleaned values, in contract order; NaN is unknown.

    The records must have passed the request model (service.schemas.PredictRequest).
    """
    matrix = np.empty((len(records), len(FEATURES)), dtype=np.float64)
    for j, feature in enumerate(FEATURES):
        column = [record.get(feature.name) for record in records]
        if feature.kind is FeatureKind.CATEGORY:
            codes = {label: feature.clean_value(label) for label in set(column)}
            matrix[:, j] = [codes[label] for label in column]
        else:
            matrix[:, j] = np.array(column, dtype=np.float64)  # None becomes NaN: unknown
    return matrix
