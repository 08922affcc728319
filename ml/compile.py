"""Compile a fitted, group-constrained HistGradientBoosting pipeline into lookup tables.

With interaction constraints that partition the features into disjoint groups, every tree uses
the features of one group only, so the model's raw score is
    f(x) = c + h_1(x_G1) + ... + h_k(x_Gk).
Each feature takes finitely many distinct routes through the trees (its bins: the thresholds the
model was fitted with, or a nominal feature's allowed codes, plus "unknown"), so each h_g is a table
over its group's bins. The tables are read off the fitted model through its
`decision_function`: with r the all-unknown row,
    table_g[b] = f(x_G = b, rest = r) - f(r),   f(x) = f(r) + sum_g table_g[x_G].
Each tree splits on a few of its group's features only, so the trees are taken in sets that
split on the same features S, and each set is evaluated on the grid of S's bins alone (a copy of
the model holding just those trees), then broadcast over the group's other features: a quarter of
the work of evaluating every tree on the group's whole grid. `compile_pipeline` then checks the
tables reproduce the model; a mismatch is an error, never a silently different serving model.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from ml.compiled import CompiledModel, FeatureBins, GroupTable, group_strides
from ml.contract import FEATURE_NAMES, FEATURES

# Largest table a group may need; a bigger one means the interaction groups are too wide.
MAX_TABLE_CELLS = 5_000_000
EXACTNESS_TOLERANCE = 1e-9


class CompileError(RuntimeError):
    """The fitted model cannot be compiled into tables, or the tables do not reproduce it."""


def interaction_partition(groups: Sequence[Sequence[str]]) -> list[list[int]]:
    """Feature indices of each group, with every feature not in a group alone in its own."""
    partition = [[FEATURE_NAMES.index(name) for name in group] for group in groups]
    listed = {i for group in partition for i in group}
    partition += [[i] for i in range(len(FEATURES)) if i not in listed]
    return partition


def _feature_bins(model: HistGradientBoostingClassifier) -> list[tuple[FeatureBins, list[float]]]:
    """Bin edges of each feature and one representative value per bin (unknown last)."""
    is_categorical = model.is_categorical_
    if is_categorical is None:
        is_categorical = np.zeros(len(FEATURES), dtype=bool)
    if list(is_categorical) != sorted(is_categorical, reverse=True):
        # The estimator moves categorical columns first and reads the interaction constraints
        # and its bins in that order: the contract must list nominal features first.
        raise CompileError("nominal features must come first in ml.contract.FEATURES")
    result = []
    for j, feature in enumerate(FEATURES):
        if is_categorical[j]:
            # Every allowed code gets its own bin, seen in training or not: the model's own
            # handling of unseen codes is read off like any other value.
            values = feature.domain()
            edges = [(a + b) / 2 for a, b in itertools.pairwise(values)]
            representatives = values
        else:
            # Private attribute, pinned by the exactness check below and by the tests: the real-
            # valued thresholds the trees split on (bin b holds values in (t[b-1], t[b]]).
            thresholds = [float(t) for t in model._bin_mapper.bin_thresholds_[j]]
            edges = thresholds
            representatives = [*thresholds, (thresholds[-1] + 1.0) if thresholds else 0.0]
        result.append((FeatureBins(tuple(edges)), [*representatives, math.nan]))
    return result


def compile_model(
    model: HistGradientBoostingClassifier, partition: Sequence[Sequence[int]]
) -> CompiledModel:
    """Tables of a fitted classifier whose interaction constraints are `partition`."""
    bins_and_values = _feature_bins(model)
    bins = [b for b, _ in bins_and_values]
    reference = np.full((1, len(FEATURES)), np.nan)
    intercept = float(model.decision_function(reference)[0])
    trees = _trees_by_features(model, partition)
    groups = []
    for members in partition:
        shape = [bins[f].n_bins for f in members]
        if math.prod(shape) > MAX_TABLE_CELLS:
            names = [FEATURE_NAMES[f] for f in members]
            raise CompileError(
                f"group {names} needs {math.prod(shape):,} cells; split it into smaller groups"
            )
        table = np.zeros(shape)
        for used, predictors in trees.items():
            if not set(used) <= set(members):
                continue
            # These trees' term over the bins of the features they split on, broadcast over the
            # group's others (a tree's value does not depend on a feature it never splits on).
            grid = np.full((math.prod(bins[f].n_bins for f in used), len(FEATURES)), np.nan)
            mesh = np.meshgrid(*(bins_and_values[f][1] for f in used), indexing="ij")
            for axis, feature in enumerate(used):
                grid[:, feature] = mesh[axis].ravel()
            subset = copy.copy(model)  # shallow: the same fitted state, fewer trees
            subset._predictors = predictors
            values = subset.decision_function(grid)
            term = values - values[-1]  # the grid's last row is all unknown: the reference row
            table += _broadcast(term, used, members, bins)
        for axis, feature in enumerate(members):
            bins[feature], table = _merge_equal_bins(bins[feature], table, axis)
        groups.append(GroupTable(tuple(members), group_strides(bins, members), table.ravel()))
    return CompiledModel(intercept, bins, groups)


def _trees_by_features(
    model: HistGradientBoostingClassifier, partition: Sequence[Sequence[int]]
) -> dict[tuple[int, ...], list[list[object]]]:
    """The model's trees (one per boosting iteration: a binary classifier) keyed by the sorted
    features each splits on; CompileError for a tree that splits on features of two groups.

    Reads the private `_predictors` (pinned, like the bins, by the exactness check and tests).
    A tree that is a single leaf adds the same value everywhere: it is in the intercept.
    """
    group_of = {feature: k for k, members in enumerate(partition) for feature in members}
    trees: dict[tuple[int, ...], list[list[object]]] = defaultdict(list)
    for iteration, predictors in enumerate(model._predictors):
        nodes = predictors[0].nodes
        used = tuple(sorted(set(nodes["feature_idx"][nodes["is_leaf"] == 0].tolist())))
        if not used:
            continue
        if len({group_of[f] for f in used}) > 1:
            names = [FEATURE_NAMES[f] for f in used]
            raise CompileError(
                f"tree {iteration} splits on {names}, features of more than one interaction "
                "group: the model was not fitted with these groups as its interaction constraints"
            )
        trees[used].append(predictors)
    return dict(trees)


def _broadcast(
    term: np.ndarray, used: Sequence[int], members: Sequence[int], bins: Sequence[FeatureBins]
) -> np.ndarray:
    """`term` (over the bins of `used`, C order) shaped to add over the group `members`' table:
    size 1 along each member the trees do not split on."""
    order = sorted(range(len(used)), key=lambda axis: list(members).index(used[axis]))
    values = term.reshape([bins[f].n_bins for f in used]).transpose(order)
    return values.reshape([bins[f].n_bins if f in used else 1 for f in members])


def _merge_equal_bins(
    bins: FeatureBins, table: np.ndarray, axis: int
) -> tuple[FeatureBins, np.ndarray]:
    """Drop the edges between neighbouring bins that no tree tells apart (equal table slices).

    Most thresholds a feature was binned with are never split on; dropping them shrinks the
    tables severalfold without changing a single prediction. The unknown bin always stays.
    """
    slices = np.moveaxis(table, axis, 0)
    known = slices.shape[0] - 1  # the last bin is "unknown"
    keep = [0] + [b for b in range(1, known) if not np.array_equal(slices[b], slices[b - 1])]
    edges = tuple(bins.edges[b - 1] for b in keep[1:])
    merged = np.moveaxis(slices[[*keep, known]], 0, axis)
    return FeatureBins(edges), np.ascontiguousarray(merged)


def check_exact(
    pipeline: Pipeline,
    compiled: CompiledModel,
    matrix: np.ndarray,
    known: np.ndarray | None = None,
) -> float:
    """Largest difference in probability between the pipeline's model and the tables.

    `known`: the model's probabilities of the first rows of `matrix`, already computed."""
    done = 0 if known is None else len(known)
    scored = pipeline[-1].predict_proba(matrix[done:])[:, 1]
    expected = scored if known is None else np.concatenate([known, scored])
    actual = compiled.predict_proba(matrix)
    return float(np.max(np.abs(expected - actual)))


def random_rows(compiled: CompiledModel, n_rows: int, seed: int) -> np.ndarray:
    """Rows drawn across every feature's bins, unknowns included, to test the tables everywhere."""
    rng = np.random.default_rng(seed)
    columns = []
    for feature, bins in zip(FEATURES, compiled.bins, strict=True):
        domain = feature.domain()
        if domain:
            values = np.array([*domain, math.nan])
        else:
            edges = np.array(bins.edges) if bins.edges else np.zeros(1)
            values = np.concatenate([edges, edges + 0.005, [edges[-1] + 10.0, math.nan]])
        columns.append(rng.choice(values, size=n_rows))
    return np.column_stack(columns)


def compile_pipeline(
    pipeline: Pipeline,
    partition: Sequence[Sequence[int]],
    check_matrix: np.ndarray,
    seed: int = 0,
    check_probability: np.ndarray | None = None,
) -> tuple[CompiledModel, float]:
    """Compile the pipeline's classifier and prove the tables reproduce it on the given rows and
    on random rows across all bins. Returns the model and the largest difference seen.

    `check_probability`: the pipeline's own probabilities of `check_matrix`, when the caller has
    them already (training scored those rows to choose the threshold), so they are not computed
    twice."""
    compiled = compile_model(pipeline[-1], partition)
    rows = np.vstack([check_matrix, random_rows(compiled, 20_000, seed)])
    difference = check_exact(pipeline, compiled, rows, check_probability)
    if difference > EXACTNESS_TOLERANCE:
        raise CompileError(
            f"compiled tables differ from the fitted model by up to {difference:.3g} in "
            f"probability (allowed {EXACTNESS_TOLERANCE:g}); are the interaction groups disjoint?"
        )
    return compiled, difference
