"""Exact contributions of the compiled model, global importance, term figures and the figures'
legends (AUC, AP, base rate, operating point, rows per calibration bin)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.artefact import COMPILED_FILE, read_metadata
from ml.compile import random_rows
from ml.compiled import CompiledModel
from ml.evaluate import MODEL_CARD, write_plots
from ml.explain import ExplanationError, global_importance
from ml.params import EvaluateParams
from tests.ml.conftest import PipelineRun
from tests.service.model_factory import PAST_ACCIDENT_EFFECT, build_model


def test_contributions_plus_base_value_are_the_logit_of_the_trained_model(
    trained: PipelineRun,
) -> None:
    # given the trained model and rows across every bin, unknowns included
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    rows = random_rows(compiled, 5_000, seed=9)
    # when contributions are computed
    terms = compiled.contributions(rows)
    probability = compiled.predict_proba(rows)
    # then base value + contributions = logit(probability), to 1e-9
    logit = np.log(probability / (1 - probability))
    worst = float(np.max(np.abs(compiled.intercept + terms.sum(axis=1) - logit)))
    assert worst < 1e-9, f"largest gap {worst:.3g}"
    assert terms.shape == (len(rows), len(compiled.groups))
    # and the one-row path gives the same terms as the vectorised one
    for row, expected in zip(rows[:200].tolist(), terms[:200].tolist(), strict=True):
        assert compiled.contributions_one(row) == expected


def test_group_names_follow_the_groups() -> None:
    model = build_model()
    assert "PastAccident" in model.group_names
    assert "Gender+Age" in model.group_names, "a group's features joined by '+'"
    assert len(set(model.group_names)) == len(model.groups)


def test_a_malformed_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected an array of shape \(n, 10\)"):
        build_model().contributions(np.zeros((3, 4)))


def test_importance_is_the_mean_absolute_deviation_of_each_term() -> None:
    # given rows where PastAccident is No, Yes and unknown in known proportions
    model = build_model()
    rows = random_rows(model, 3_000, seed=1)
    column = model.group_names.index("PastAccident")
    rows[:, list(model.groups[column].features)] = np.repeat([0.0, 1.0, np.nan], 1_000)[:, None]
    # when the global importance is computed
    explanation = global_importance(model, rows)
    # then PastAccident's is mean |term - mean term| of -3, +3 and 0 in equal shares
    by_name = {g.group: g for g in explanation.groups}
    assert by_name["PastAccident"].importance == pytest.approx(2 * PAST_ACCIDENT_EFFECT / 3)
    assert [g.importance for g in explanation.groups] == sorted(
        (g.importance for g in explanation.groups), reverse=True
    )
    assert math.isclose(sum(g.share for g in explanation.groups), 1.0)
    shape = by_name["PastAccident"].shape[0]
    assert (shape.values, shape.mean_term, shape.unknown) == (["No", "Yes"], [-3.0, 3.0], 0.0)
    with pytest.raises(ExplanationError, match="no rows"):
        global_importance(model, rows[:0])


def test_evaluate_records_the_explanation_and_links_every_figure(trained: PipelineRun) -> None:
    # given a model trained and evaluated end to end
    metadata = read_metadata(trained.model_dir)
    # then model.json holds the base value and one importance per group, each with its shape
    explanation = metadata.explanation
    assert explanation is not None
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    assert explanation.base_value == compiled.intercept
    assert sorted(g.group for g in explanation.groups) == sorted(compiled.group_names)
    assert all(len(g.shape) == len(g.features) for g in explanation.groups)
    # and the model card links a PNG per group and the importance chart, all of which exist
    card = (trained.model_dir / MODEL_CARD).read_text()
    links = re.findall(r"\]\(([^)]+\.png)\)", card)
    assert len(links) == len(compiled.groups) + 1, links
    for link in links:
        target = Path(os.path.normpath(trained.model_dir / link))
        assert target.is_file(), f"card links {link}, which does not exist"
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Why it decides" in card


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The legend texts, axis labels and bar labels of every figure as it is closed."""
    seen: list[dict[str, Any]] = []
    close = plt.close

    def record(figure: Any = None) -> None:
        for axes in figure.axes:
            legend = axes.get_legend()
            seen.append(
                {
                    "title": axes.get_title(),
                    "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                    "labels": (axes.get_xlabel(), axes.get_ylabel()),
                    "texts": [t.get_text() for t in axes.texts],
                }
            )
        close(figure)

    monkeypatch.setattr(plt, "close", record)
    return seen


def test_figures_carry_auc_ap_base_rate_operating_point_and_bin_counts(
    tmp_path: Path, drawn: list[dict[str, Any]]
) -> None:
    # given scores of a known quality
    rng = np.random.default_rng(0)
    probability = rng.beta(1, 6, 5_000)
    labels = (rng.random(5_000) < probability).astype(int)
    params = EvaluateParams(min_roc_auc=0.5, max_auc_drop=0.1, calibration_bins=10)
    # when the figures are drawn
    write_plots(labels, probability, params, tmp_path, threshold=0.25)
    by_title = {d["title"]: d for d in drawn if d["title"]}
    # then ROC carries its AUC, PR its AP, the base rate and the point at the threshold
    auc = roc_auc_score(labels, probability)
    ap = average_precision_score(labels, probability)
    assert f"model (AUC {auc:.3f})" in by_title["ROC curve"]["legend"]
    pr = by_title["PR curve"]["legend"]
    assert f"model (AP {ap:.3f})" in pr
    assert f"base rate {labels.mean():.3f}" in pr
    chosen = probability >= 0.25
    precision = labels[chosen].mean()
    recall = labels[chosen].sum() / labels.sum()
    assert f"threshold 0.250: P {precision:.2f}, R {recall:.2f}" in pr, pr
    # and the calibration figure the rows of each bin, which add up to every row
    counts = next(d for d in drawn if d["labels"][1] == "rows")["texts"]
    assert sum(int(c.replace(",", "")) for c in counts) == len(labels)
    table = pd.read_csv(tmp_path / "plots" / "calibration.csv")
    assert table["rows"].sum() == len(labels)
    assert by_title["ROC curve"]["labels"] == ("false positive rate", "true positive rate")


def test_the_binned_path_gives_the_very_same_floats() -> None:
    # given rows across every bin, unknowns included
    model = build_model()
    rows = random_rows(model, 4_000, seed=4)
    # when they are binned once and then scored (what predict-buy score does)
    bins = model.bin_matrix(rows)
    # then probabilities and contributions are bit-identical to the direct path
    assert np.array_equal(model.predict_proba_binned(bins), model.predict_proba(rows))
    assert np.array_equal(model.contributions_binned(bins), model.contributions(rows))
