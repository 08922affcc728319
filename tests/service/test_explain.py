"""`explain=true` on /predict and /predict/batch, and the global explanation on /model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml.artefact import read_metadata, write_metadata
from ml.compile import random_rows
from ml.explain import global_importance
from service.schemas import ORIGINAL_SAMPLE
from tests.service.conftest import LiveServer, run_service
from tests.service.model_factory import build_model, sample_requests, write_model_dir


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_explain_adds_exact_contributions_to_one_prediction(client: httpx.Client) -> None:
    # given the original payload, asked with and without explain
    plain = client.post("/predict", json=ORIGINAL_SAMPLE).json()
    response = client.post("/predict", params={"explain": "true"}, json=ORIGINAL_SAMPLE)
    # then the prediction is the same, with one contribution per feature group added
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {k: answer[k] for k in plain} == plain, "explain changes nothing else"
    groups = build_model().group_names
    assert sorted(answer["contributions"]) == sorted(groups)
    # and base value + contributions = logit(probability)
    total = answer["base_value"] + math.fsum(answer["contributions"].values())
    assert abs(total - _logit(answer["probability"])) < 1e-9


def test_past_accident_contributes_its_known_effect(client: httpx.Client) -> None:
    # given the fixture model, where PastAccident "Yes" adds +3 and unknown adds 0
    body = {**ORIGINAL_SAMPLE, "PastAccident": "Yes"}
    yes = client.post("/predict?explain=true", json=body).json()["contributions"]
    unknown = client.post("/predict?explain=true", json={**body, "PastAccident": None}).json()
    # then its group's contribution says exactly that
    assert yes["PastAccident"] == 3.0
    assert unknown["contributions"]["PastAccident"] == 0.0


@pytest.mark.parametrize("rows", [20, 2_000])  # inline, and in the worker thread (> 1,000 rows)
def test_explain_on_a_batch(client: httpx.Client, rows: int) -> None:
    # given a batch of varied rows
    body = {"rows": sample_requests(rows, seed=rows)}
    plain = client.post("/predict/batch", json=body).json()
    answer = client.post("/predict/batch?explain=1", json=body).json()
    # then every row keeps its prediction and gains contributions that add up to its logit
    assert [(p["predicted_class"], p["probability"]) for p in answer["predictions"]] == [
        (p["predicted_class"], p["probability"]) for p in plain["predictions"]
    ]
    worst = max(
        abs(
            answer["base_value"] + math.fsum(p["contributions"].values()) - _logit(p["probability"])
        )
        for p in answer["predictions"]
    )
    assert worst < 1e-9, f"largest gap {worst:.3g}"
    assert "base_value" not in plain and "contributions" not in plain["predictions"][0]


def test_a_bad_explain_value_is_refused_naming_the_parameter(client: httpx.Client) -> None:
    response = client.post("/predict", params={"explain": "perhaps"}, json=ORIGINAL_SAMPLE)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "explain"]


def test_a_model_without_an_explanation_says_so(client: httpx.Client) -> None:
    assert client.get("/model").json()["explanation"] is None


@pytest.fixture(scope="module")
def explained_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The fixture model with the global explanation the evaluate stage records."""
    model_dir = write_model_dir(tmp_path_factory.mktemp("explained"))
    model = build_model()
    explanation = global_importance(model, random_rows(model, 5_000, seed=3))
    write_metadata(
        model_dir, read_metadata(model_dir).model_copy(update={"explanation": explanation})
    )
    with run_service(tmp_path_factory.mktemp("log") / "service.log", model_dir) as live:
        yield live


def test_model_shows_global_importance_and_term_shapes(
    explained_server: LiveServer, tmp_path: Path
) -> None:
    # when /model is read
    info = httpx.get(f"{explained_server.base_url}/model", timeout=10).json()["explanation"]
    # then every group is there, largest importance first, shares adding up to one
    groups = info["groups"]
    assert sorted(g["group"] for g in groups) == sorted(build_model().group_names)
    importances = [g["importance"] for g in groups]
    assert importances == sorted(importances, reverse=True)
    assert math.isclose(sum(g["share"] for g in groups), 1.0, rel_tol=1e-9)
    assert groups[0]["group"] == "PastAccident", "the fixture's strongest term (+-3)"
    # and each group's shape follows its term: PastAccident's is exactly the table
    shape = groups[0]["shape"][0]
    assert shape["values"] == ["No", "Yes"]
    assert shape["mean_term"] == [-3.0, 3.0] and shape["unknown"] == 0.0
    assert info["base_value"] == 0.0
    assert np.all([len(g["shape"]) == len(g["features"]) for g in groups])
