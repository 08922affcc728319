"""Explanations of the served model: each feature group's global importance and term shape.

The compiled model's log-odds are `base value + one term per feature group` (ml/compiled.py), so
the contribution of a group to one prediction is its term, exactly. Globally, a group matters as
much as its term varies between customers: its importance is the mean absolute deviation of the
term from its mean over the evaluation rows (for an additive model this is exactly the mean
|SHAP value| with those rows as background). A term's shape is drawn per member feature: the mean
term among rows with each value of that feature (for a one-feature group, the term itself).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Final

import numpy as np

from ml.artefact import Explanation, GroupImportance, TermShape
from ml.compiled import CompiledModel
from ml.contract import FEATURE_NAMES, FEATURES, FeatureKind

TERMS_DIR: Final = "terms"
IMPORTANCE_FIGURE: Final = "importance.png"
# Above this many distinct known values a numeric feature's shape is drawn over quantile bins.
MAX_POINTS: Final = 60


class ExplanationError(ValueError):
    """There is nothing to explain with (no rows), or the rows do not fit the model."""


def global_importance(model: CompiledModel, matrix: np.ndarray) -> Explanation:
    """Each group's importance over the rows of `matrix` (cleaned values), largest first."""
    if len(matrix) == 0:
        raise ExplanationError("no rows to compute importance on")
    terms = model.contributions(matrix)
    importance = np.mean(np.abs(terms - terms.mean(axis=0)), axis=0)
    total = float(importance.sum())
    groups = [
        GroupImportance(
            group=name,
            features=[FEATURE_NAMES[f] for f in group.features],
            importance=float(importance[k]),
            share=float(importance[k] / total) if total > 0 else 0.0,
            shape=[term_shape(matrix[:, f], terms[:, k], f) for f in group.features],
        )
        for k, (name, group) in enumerate(zip(model.group_names, model.groups, strict=True))
    ]
    groups.sort(key=lambda g: g.importance, reverse=True)
    return Explanation(base_value=model.intercept, rows=len(matrix), groups=groups)


def term_figure_name(group: str) -> str:
    """File name of a group's term figure, e.g. term_Gender_Age.png."""
    return "term_" + group.replace("+", "_") + ".png"


def term_shape(values: np.ndarray, terms: np.ndarray, feature_index: int) -> TermShape:
    """The mean of a group's term among rows with each value of one of its features."""
    feature = FEATURES[feature_index]
    unknown = np.isnan(values)
    unknown_mean = float(terms[unknown].mean()) if unknown.any() else None
    known_values, known_terms = values[~unknown], terms[~unknown]
    if feature.kind is FeatureKind.CATEGORY:
        means = [
            float(known_terms[known_values == c].mean()) if (known_values == c).any() else None
            for c in range(len(feature.categories))
        ]
        return TermShape(feature=feature.name, values=list(feature.categories), mean_term=means,
                         unknown=unknown_mean)  # fmt: skip
    distinct = np.unique(known_values)
    if len(distinct) <= MAX_POINTS or feature.nominal:
        index = np.searchsorted(distinct, known_values)
        sums = np.bincount(index, known_terms, minlength=len(distinct))
        means = (sums / np.bincount(index, minlength=len(distinct))).tolist()
        return TermShape(feature=feature.name, values=distinct.tolist(), mean_term=means,
                         unknown=unknown_mean)  # fmt: skip
    edges = np.unique(np.quantile(known_values, np.linspace(0, 1, MAX_POINTS + 1)))
    which = np.clip(np.searchsorted(edges, known_values, side="right") - 1, 0, len(edges) - 2)
    centres, means = [], []
    for b in range(len(edges) - 1):
        in_bin = which == b
        if in_bin.any():
            centres.append(float(np.median(known_values[in_bin])))
            means.append(float(known_terms[in_bin].mean()))
    return TermShape(feature=feature.name, values=centres, mean_term=means, unknown=unknown_mean)


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: object, path: Path) -> None:
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    # No creation date in the file: the same model and data give byte-identical figures.
    figure.savefig(staged, format="png", dpi=100, metadata={"Software": None})  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    staged.replace(path)


def write_term_figures(explanation: Explanation, figures_dir: Path) -> list[Path]:
    """One PNG per group in figures_dir/terms/: its term's shape along each member feature."""
    plt = pyplot()
    written = []
    for group in explanation.groups:
        panels = len(group.shape)
        figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
        for axis, shape in zip(axes[0], group.shape, strict=True):
            means = [math.nan if m is None else m for m in shape.mean_term]
            if shape.values and isinstance(shape.values[0], str):
                axis.bar([str(v) for v in shape.values], means, color="tab:blue")
                axis.tick_params(axis="x", labelrotation=30)
            else:
                feature = FEATURES[FEATURE_NAMES.index(shape.feature)]
                style = "o" if feature.nominal or len(shape.values) <= 10 else ".-"
                axis.plot(shape.values, means, style, markersize=3, color="tab:blue")
            if shape.unknown is not None:
                axis.axhline(shape.unknown, linestyle="--", color="grey", label="unknown (blank)")
                axis.legend(loc="best", fontsize="small")
            axis.axhline(0.0, color="black", linewidth=0.5)
            axis.set(xlabel=shape.feature, ylabel="mean term (log-odds)")
        title = "term shape" if panels == 1 else "term averaged per feature"
        figure.suptitle(f"{group.group}: {title}", fontsize="medium")
        figure.tight_layout()
        path = figures_dir / TERMS_DIR / term_figure_name(group.group)
        _save(figure, path)
        written.append(path)
    return written


def write_importance_figure(explanation: Explanation, figures_dir: Path) -> Path:
    """A horizontal bar chart of the groups' importance."""
    plt = pyplot()
    groups = list(reversed(explanation.groups))
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(groups) + 1.5))
    axis.barh([g.group for g in groups], [g.importance for g in groups], color="tab:blue")
    axis.set(
        xlabel="importance: mean |term - mean term| (log-odds)",
        ylabel="feature group",
        title=f"Global importance on {explanation.rows:,} rows",
    )
    figure.tight_layout()
    path = figures_dir / IMPORTANCE_FIGURE
    _save(figure, path)
    return path
