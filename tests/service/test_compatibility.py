"""The original API's clients keep working: its sample requests, field types and unknowns."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ml.contract import FEATURES_BY_NAME, ORIGINAL_API_FIELDS
from service.schemas import ORIGINAL_SAMPLE
from tests.service.model_factory import MODEL_VERSION

# Requests in the shape the original API's clients send: its training pipeline filled unknowns
# (Switch -1, PastAccident "Unknown") and its clients wrote whole numbers as floats (46.0,
# RegionID 28.0), the premium as a JSON number or as text.
ORIGINAL_CLIENT_REQUESTS: list[dict[str, Any]] = [
    ORIGINAL_SAMPLE,
    {
        "Gender": "Male",
        "Age": 44.0,
        "HasDrivingLicense": 1.0,
        "RegionID": 28.0,
        "Switch": -1,
        "PastAccident": "Unknown",
        "AnnualPremium": 40454.0,
    },
    {
        "Gender": "Female",
        "Age": 76.0,
        "HasDrivingLicense": 1,
        "RegionID": 3.0,
        "Switch": 0.0,
        "PastAccident": "No",
        "AnnualPremium": 33536,
    },
    {
        "Gender": "Male",
        "Age": 47,
        "HasDrivingLicense": 0.0,
        "RegionID": 28,
        "Switch": -1.0,
        "PastAccident": "Yes",
        "AnnualPremium": "£38,294.00 ",
    },
    {
        "Gender": "Female",
        "Age": 21.0,
        "HasDrivingLicense": 1,
        "RegionID": 11.0,
        "Switch": 1,
        "PastAccident": "Unknown",
        "AnnualPremium": 28619.0,
    },
]


def _null_equivalent(body: dict[str, Any]) -> dict[str, Any]:
    """The same request with each original encoding of unknown replaced by null."""
    return {
        name: None if FEATURES_BY_NAME[name].is_unknown_alias(value) else value
        for name, value in body.items()
    }


@pytest.mark.parametrize("body", ORIGINAL_CLIENT_REQUESTS, ids=range(len(ORIGINAL_CLIENT_REQUESTS)))
def test_every_original_client_request_is_answered(client: httpx.Client, body: dict) -> None:
    # given a request exactly as an original client sends it / when posted
    response = client.post("/predict", json=body)
    # then it gets 200 and the original answer's key, with the additions beside it
    assert response.status_code == 200, response.text
    assert response.json()["predicted_class"] in (0, 1)
    assert set(body) == set(ORIGINAL_API_FIELDS), "the sample covers the seven original fields"


@pytest.mark.parametrize(
    "body",
    [b for b in ORIGINAL_CLIENT_REQUESTS if b != _null_equivalent(b)],
    ids=lambda b: f"Switch={b['Switch']}-PastAccident={b['PastAccident']}",
)
def test_an_original_unknown_gets_exactly_the_answer_of_null(
    client: httpx.Client, body: dict
) -> None:
    # given a request using the original encodings of unknown, and the same with null
    with_aliases = client.post("/predict", json=body)
    with_null = client.post("/predict", json=_null_equivalent(body))
    # then both get 200 and the very same answer
    assert with_aliases.status_code == with_null.status_code == 200, with_aliases.text
    assert with_aliases.json() == with_null.json()


def test_batch_rows_with_original_unknowns_get_the_answers_of_null(client: httpx.Client) -> None:
    # given batch rows with the original encodings of unknown, and the same rows with null
    rows = ORIGINAL_CLIENT_REQUESTS
    with_aliases = client.post("/predict/batch", json={"rows": rows})
    with_null = client.post("/predict/batch", json={"rows": [_null_equivalent(r) for r in rows]})
    # then the predictions are identical, row by row, and equal the single answers
    assert with_aliases.status_code == with_null.status_code == 200, with_aliases.text
    assert with_aliases.json() == with_null.json()
    singles = [client.post("/predict", json=row).json() for row in rows]
    assert [p["probability"] for p in with_aliases.json()["predictions"]] == pytest.approx(
        [s["probability"] for s in singles], abs=1e-12
    )


def test_the_openapi_document_says_the_original_unknowns_mean_null(client: httpx.Client) -> None:
    # when the document is read
    document = client.get("/openapi.json").json()
    properties = document["components"]["schemas"]["PredictRequest"]["properties"]
    # then Switch -1 and PastAccident "Unknown" are allowed values described as null
    for field, alias in (("Switch", -1), ("PastAccident", "Unknown")):
        options = [o for o in properties[field]["anyOf"] if o.get("const") == alias]
        assert options, f"{field}: {alias!r} is not in the document"
        assert "same as null" in options[0]["description"]
        assert "unknown" in properties[field]["description"]
    assert (
        "Switch" in document["info"]["description"] and "Unknown" in document["info"]["description"]
    )


def test_the_root_answers_as_the_original_did(client: httpx.Client) -> None:
    # when the original health check is called with GET (and HEAD)
    answer = client.get("/")
    head = client.head("/")
    # then health_check "OK" and a model_version are there, other keys are additions
    assert answer.status_code == head.status_code == 200
    assert answer.json()["health_check"] == "OK"
    assert answer.json()["model_version"] == MODEL_VERSION
    assert head.content == b"", "HEAD carries no body"
