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
from typing import Final

import numpy as np

from ml.artefact import Explanation, GroupImportance
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
            importance=float(value),
            share=float(value / total) if total > 0 else 0.0,
        )
        for name, group, value in zip(model.group_names, model.groups, importance, strict=True)
    ]
    groups.sort(key=lambda g: g.importance, reverse=True)
    return Explanation(base_value=model.intercept, rows=len(matrix), groups=groups)


def term_figure_name(group: str) -> str:
    """File name of a group's term figure, e.g. term_Gender_Age.png."""
    return "term_" + group.replace("+", "_") + ".png"


def _shape_points(
    values: np.ndarray, terms: np.ndarray, feature_index: int
) -> tuple[list[str] | np.ndarray, np.ndarray, float | None]:
    """(x positions or labels, mean term at each, mean term of unknown rows or None)."""
    feature = FEATURES[feature_index]
    unknown = np.isnan(values)
    unknown_mean = float(terms[unknown].mean()) if unknown.any() else None
    known_values, known_terms = values[~unknown], terms[~unknown]
    if feature.kind is FeatureKind.CATEGORY:
        codes = np.arange(len(feature.categories))
        means = np.array(
            [known_terms[known_values == c].mean() if (known_values == c).any() else math.nan
             for c in codes]
        )  # fmt: skip
        return list(feature.categories), means, unknown_mean
    distinct = np.unique(known_values)
    if len(distinct) <= MAX_POINTS or feature.nominal:
        sums = np.zeros(len(distinct))
        index = np.searchsorted(distinct, known_values)
        np.add.at(sums, index, known_terms)
        return distinct, sums / np.bincount(index, minlength=len(distinct)), unknown_mean
    edges = np.unique(np.quantile(known_values, np.linspace(0, 1, MAX_POINTS + 1)))
    which = np.clip(np.searchsorted(edges, known_values, side="right") - 1, 0, len(edges) - 2)
    centres, means = [], []
    for b in range(len(edges) - 1):
        in_bin = which == b
        if in_bin.any():
            centres.append(float(np.median(known_values[in_bin])))
            means.append(float(known_terms[in_bin].mean()))
    return np.array(centres), np.array(means), unknown_mean


def _save(figure: object, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    # No creation date in the file: the same model and data give byte-identical figures.
    figure.savefig(staged, format="png", dpi=100, metadata={"Software": None})  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    staged.replace(path)


def write_term_figures(model: CompiledModel, matrix: np.ndarray, figures_dir: Path) -> list[Path]:
    """One PNG per group in figures_dir/terms/: its term's shape along each member feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = model.contributions(matrix)
    written = []
    for k, (name, group) in enumerate(zip(model.group_names, model.groups, strict=True)):
        panels = len(group.features)
        figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
        for axis, feature_index in zip(axes[0], group.features, strict=True):
            x, means, unknown_mean = _shape_points(matrix[:, feature_index], terms[:, k],
                                                   feature_index)  # fmt: skip
            if isinstance(x, list):
                axis.bar(x, means, color="tab:blue")
                axis.tick_params(axis="x", labelrotation=30)
            else:
                few = FEATURES[feature_index].nominal or len(x) <= 10
                style = "o" if few else ".-"
                axis.plot(x, means, style, markersize=3, color="tab:blue")
            if unknown_mean is not None:
                axis.axhline(unknown_mean, linestyle="--", color="grey", label="unknown (blank)")
                axis.legend(loc="best", fontsize="small")
            axis.axhline(0.0, color="black", linewidth=0.5)
            axis.set(xlabel=FEATURE_NAMES[feature_index], ylabel="mean term (log-odds)")
        title = f"{name}: term shape" if panels == 1 else f"{name}: term averaged per feature"
        figure.suptitle(title, fontsize="medium")
        figure.tight_layout()
        path = figures_dir / TERMS_DIR / term_figure_name(name)
        _save(figure, path)
        written.append(path)
    return written


def write_importance_figure(explanation: Explanation, figures_dir: Path) -> Path:
    """A horizontal bar chart of the groups' importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
