"""Model quality on the real rows in ../shared/data, and behavioural tests of a trained model."""

from __future__ import annotations

import pytest

from ml.artefact import load_serving_model
from ml.bench import REAL_FILES, holdout_auc
from ml.params import load_params
from tests.conftest import REPO_ROOT

BASE = {
    "Gender": "Male",
    "Age": 44,
    "HasDrivingLicense": 1,
    "RegionID": 28,
    "Switch": 0,
    "VehicleAge": "1-2 Year",
    "PastAccident": "Yes",
    "AnnualPremium": "£1,623.85 ",
    "SalesChannelID": 26,
    "DaysSinceCreated": 150,
}


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize(("name", "minimum"), sorted(REAL_FILES.items()))
def test_real_data_quality(shared_data, name, minimum):
    # given the repository's training parameters
    params = load_params(REPO_ROOT / "params.yaml").train
    # when trained on 80% of the real rows and the served model scores the other 20%
    auc, plain, _ = holdout_auc(shared_data / name, params, seed=0)
    # then it reaches the target and beats a plain HistGradientBoosting on the same split
    assert auc >= minimum, f"{name}: ROC AUC {auc:.4f} < {minimum}"
    assert auc > plain, f"{name}: ROC AUC {auc:.4f} <= plain HistGradientBoosting {plain:.4f}"


@pytest.fixture(scope="module")
def model(trained):
    compiled, _ = load_serving_model(trained.model_dir)
    return compiled


@pytest.mark.model
@pytest.mark.parametrize(
    ("change", "direction"),
    [
        ({"Switch": 1}, -1),  # already insured: much less likely to buy
        ({"PastAccident": "No"}, -1),
        ({"VehicleAge": "> 2 Years"}, +1),
        ({"VehicleAge": "< 1 Year"}, -1),
        ({"SalesChannelID": 152}, -1),  # the channel that reaches young, insured customers
    ],
)
def test_direction(model, change, direction):
    before = model.predict_proba_record(BASE)
    after = model.predict_proba_record({**BASE, **change})
    assert (after - before) * direction > 0, f"{change}: {before:.3f} -> {after:.3f}"


@pytest.mark.model
def test_premium_spelling_does_not_change_the_prediction(model):
    as_text = model.predict_proba_record({**BASE, "AnnualPremium": "£1,623.85 "})
    as_number = model.predict_proba_record({**BASE, "AnnualPremium": 1623.85})
    assert as_text == as_number


@pytest.mark.model
def test_minimum_functionality(model):
    insured = {**BASE, "Switch": 1, "PastAccident": "No", "VehicleAge": "< 1 Year"}
    assert model.predict_proba_record(insured) < 0.02
    assert model.predict_proba_record(BASE) > 0.2
    unknown = model.predict_proba_record({})
    assert 0.0 < unknown < 0.5, "all-unknown rows get a middling, not an extreme, probability"
