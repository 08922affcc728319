"""The serving form of a trained model: lookup tables that reproduce it exactly, in numpy only.

Training fits a HistGradientBoosting classifier whose trees are constrained to disjoint groups of
features, so its raw score is `intercept + sum of one term per group`, each term a function of that
group's features only. Every feature is binned (the bins the trees themselves split on), so each
term is a finite table indexed by the group's bin numbers. `ml.compile` fills these tables from the
fitted model and checks they reproduce it; this module only reads and evaluates them.

Why: a single-row prediction through scikit-learn costs about a millisecond of validation and
dispatch; here it is a few bisections and table lookups (microseconds), with no scikit-learn,
pandas or pickle in the serving image. The file is a numpy `.npz` read with `allow_pickle=False`,
so loading it cannot execute code.
"""

from __future__ import annotations

import io
import math
import zipfile
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.contract import FEATURE_NAMES, FEATURES, clean_row


class CompiledModelError(ValueError):
    """The compiled model file is unreadable or does not fit the feature contract."""


@dataclass(frozen=True)
class FeatureBins:
    """Bin edges of one feature: bin = bisect_left(edges, value); unknown gets the last bin."""

    edges: tuple[float, ...]

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2

    def bin_of(self, value: float) -> int:
        if value != value:  # NaN: unknown
            return len(self.edges) + 1
        return bisect_left(self.edges, value)


@dataclass(frozen=True)
class GroupTable:
    """The additive term of one feature group, flattened in C order over the group's bins."""

    features: tuple[int, ...]
    strides: tuple[int, ...]
    table: np.ndarray


class CompiledModel:
    """Predicts probabilities from contract-cleaned feature values with lookup tables."""

    def __init__(self, intercept: float, bins: Sequence[FeatureBins], groups: Sequence[GroupTable]):
        if len(bins) != len(FEATURES):
            raise CompiledModelError(
                f"compiled model has {len(bins)} features, the contract has {len(FEATURES)}"
            )
        self.intercept = float(intercept)
        self.bins = tuple(bins)
        self.groups = tuple(groups)
        self._edges = [np.asarray(b.edges, dtype=np.float64) for b in self.bins]
        # Pure-Python copies: for one row, list indexing beats numpy scalar access tenfold.
        self._plan = [
            (tuple(zip(g.features, g.strides, strict=True)), g.table.tolist()) for g in self.groups
        ]

    # -- one row: the request path, pure Python -------------------------------------------------
    def raw_score_one(self, values: Sequence[float]) -> float:
        return self.raw_score_of_bins([b.bin_of(v) for b, v in zip(self.bins, values, strict=True)])

    def raw_score_of_bins(self, bins: Sequence[int]) -> float:
        """The log-odds of one row given each feature's bin number (FeatureBins.bin_of)."""
        score = self.intercept
        for members, table in self._plan:
            index = 0
            for feature, stride in members:
                index += bins[feature] * stride
            score += table[index]
        return score

    def predict_proba_one(self, values: Sequence[float]) -> float:
        """Probability of class 1 for one row of cleaned values, in contract order."""
        return _sigmoid(self.raw_score_one(values))

    def predict_proba_of_bins(self, bins: Sequence[int]) -> float:
        """Probability of class 1 for one row given each feature's bin number."""
        return _sigmoid(self.raw_score_of_bins(bins))

    def predict_proba_record(self, record: dict[str, object]) -> float:
        """Probability of class 1 for one raw record: the contract's cleaning, then the tables."""
        return self.predict_proba_one(clean_row(record))

    # -- many rows: vectorised ----------------------------------------------------------------
    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 for an (n_rows, n_features) array of cleaned values."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.bins):
            raise CompiledModelError(
                f"expected an array of shape (n, {len(self.bins)}), got {matrix.shape}"
            )
        bins = np.empty(matrix.shape, dtype=np.int64)
        for j, edges in enumerate(self._edges):
            column = matrix[:, j]
            bins[:, j] = np.searchsorted(edges, column, side="left")
            bins[np.isnan(column), j] = len(edges) + 1
        score = np.full(matrix.shape[0], self.intercept)
        for group in self.groups:
            index = np.zeros(matrix.shape[0], dtype=np.int64)
            for feature, stride in zip(group.features, group.strides, strict=True):
                index += bins[:, feature] * stride
            score += group.table[index]
        return _sigmoid_many(score)

    # -- explanations: the additive terms ------------------------------------------------------
    # The raw score (log-odds) is the intercept plus one table term per group, so each group's
    # term is its exact contribution; the intercept (the score of a row whose every value is
    # unknown) is the base value. No approximation, no sampling: base + sum = logit(probability).
    @property
    def group_names(self) -> tuple[str, ...]:
        """One name per group, its features joined by '+', in the order of the contributions."""
        return tuple("+".join(FEATURE_NAMES[f] for f in g.features) for g in self.groups)

    def contributions_one(self, values: Sequence[float]) -> list[float]:
        """Each group's term in the log-odds of one row of cleaned values (group_names order)."""
        bins = [b.bin_of(v) for b, v in zip(self.bins, values, strict=True)]
        terms = []
        for members, table in self._plan:
            index = 0
            for feature, stride in members:
                index += bins[feature] * stride
            terms.append(table[index])
        return terms

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """(n_rows, n_groups) terms in the log-odds; each row plus `intercept` is its raw score."""
        return self.contributions_binned(self.bin_matrix(matrix))

    # -- pre-binned rows: for callers that bin each distinct value once (ml/score.py) -----------
    def bin_column(self, feature: int, values: np.ndarray) -> np.ndarray:
        """Bin numbers of one feature's cleaned values (NaN: unknown), as predict_proba bins."""
        edges = self._edges[feature]
        bins = np.searchsorted(edges, values, side="left")
        bins[np.isnan(values)] = len(edges) + 1
        return bins

    def bin_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """(n_rows, n_features) bin numbers of cleaned values, column-major."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.bins):
            raise CompiledModelError(
                f"expected an array of shape (n, {len(self.bins)}), got {matrix.shape}"
            )
        bins = np.empty(matrix.shape, dtype=np.int64, order="F")
        for j in range(matrix.shape[1]):
            bins[:, j] = self.bin_column(j, matrix[:, j])
        return bins

    def _group_index(self, bins: np.ndarray, group: GroupTable) -> np.ndarray:
        index = np.zeros(bins.shape[0], dtype=np.int64)
        for feature, stride in zip(group.features, group.strides, strict=True):
            index += bins[:, feature] * stride
        return index

    def predict_proba_binned(self, bins: np.ndarray) -> np.ndarray:
        """`predict_proba` of the rows these bins (bin_matrix) come from: the very same floats."""
        score = np.full(bins.shape[0], self.intercept)
        for group in self.groups:
            score += group.table[self._group_index(bins, group)]
        return _sigmoid_many(score)

    def contributions_binned(self, bins: np.ndarray) -> np.ndarray:
        """`contributions` of the rows these bins (bin_matrix) come from."""
        terms = np.empty((bins.shape[0], len(self.groups)), dtype=np.float64)
        for k, group in enumerate(self.groups):
            terms[:, k] = group.table[self._group_index(bins, group)]
        return terms

    # -- file format -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model as a compressed `.npz` (arrays only, no pickled objects)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(1),
            "feature_names": np.array(FEATURE_NAMES),
            "intercept": np.array(self.intercept),
            "n_groups": np.array(len(self.groups)),
        }
        for j, b in enumerate(self.bins):
            arrays[f"edges_{j}"] = np.asarray(b.edges, dtype=np.float64)
        for k, g in enumerate(self.groups):
            arrays[f"group_{k}_features"] = np.asarray(g.features, dtype=np.int64)
            arrays[f"group_{k}_table"] = np.asarray(g.table, dtype=np.float64)
        # np.savez_compressed's layout, with a fixed entry time: the same model, the same bytes.
        with path.open("wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as out:
            for name, array in arrays.items():
                entry = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
                entry.compress_type = zipfile.ZIP_DEFLATED
                with out.open(entry, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: Path, content: bytes | None = None) -> CompiledModel:
        """Read a model written by `save`, never unpickling; CompiledModelError if unusable.

        `content` is the file's bytes when the caller already read (and verified) them: the model
        is then built from exactly those bytes, whatever happens to the file meanwhile.
        """
        source = io.BytesIO(content) if content is not None else path
        try:
            with np.load(source, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError) as error:
            raise CompiledModelError(f"{path}: not a readable compiled model ({error})") from error
        try:
            if int(arrays["format_version"]) != 1:
                raise CompiledModelError(f"{path}: unsupported format {arrays['format_version']}")
            names = tuple(str(n) for n in arrays["feature_names"])
            if names != FEATURE_NAMES:
                raise CompiledModelError(
                    f"{path}: features {names} do not match the contract's {FEATURE_NAMES}"
                )
            bins = [
                FeatureBins(tuple(float(e) for e in arrays[f"edges_{j}"]))
                for j in range(len(names))
            ]
            groups = []
            for k in range(int(arrays["n_groups"])):
                features = tuple(int(f) for f in arrays[f"group_{k}_features"])
                table = arrays[f"group_{k}_table"]
                groups.append(GroupTable(features, group_strides(bins, features), table))
                if table.shape != (math.prod(bins[f].n_bins for f in features),):
                    raise CompiledModelError(f"{path}: table {k} has shape {table.shape}")
            return cls(float(arrays["intercept"]), bins, groups)
        except KeyError as error:
            raise CompiledModelError(f"{path}: missing array {error}") from error


def group_strides(bins: Sequence[FeatureBins], features: Sequence[int]) -> tuple[int, ...]:
    """C-order strides of a group's table: the last feature varies fastest."""
    strides = []
    step = 1
    for feature in reversed(features):
        strides.append(step)
        step *= bins[feature].n_bins
    return tuple(reversed(strides))


def _sigmoid_many(score: np.ndarray) -> np.ndarray:
    """`_sigmoid` of every score, bit for bit, so a row gets the very same float either way.

    Only exp could round differently in numpy, so each exp is `math.exp` (one C-level map); the
    additions and divisions are IEEE operations, identical in numpy and in Python floats.
    """
    z = np.fromiter(map(math.exp, (-np.abs(score)).tolist()), np.float64, len(score))
    return np.where(score >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _sigmoid(score: float) -> float:
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    z = math.exp(score)
    return z / (1.0 + z)
