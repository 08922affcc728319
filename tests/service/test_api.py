"""The HTTP API against a real uvicorn server (`python -m service`) serving the fixture model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml.artefact import load_serving_model, sha256_of
from ml.contract import FEATURE_NAMES, describe
from service.schemas import MAX_BATCH_ROWS, MAX_PREDICT_BODY_BYTES, ORIGINAL_SAMPLE
from tests.service.conftest import LiveServer
from tests.service.model_factory import MODEL_VERSION, THRESHOLD, sample_requests


def _predict(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/predict", json=body)


def _only_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert len(detail) == 1, detail
    return detail[0]


# -- health and description ------------------------------------------------------------------
def test_root_keeps_the_original_health_answer(client: httpx.Client) -> None:
    # when the original health check is called
    response = client.get("/")
    # then it answers 200 with the original keys (health_check "OK", a model_version); the
    # other keys are additions
    assert response.status_code == 200
    answer = response.json()
    assert answer["health_check"] == "OK", answer
    assert answer["model_version"] == MODEL_VERSION, answer
    assert {"health_check", "model_version"} <= set(answer)


def test_liveness_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["model_version"] == MODEL_VERSION


def test_model_describes_what_is_served(client: httpx.Client, model_dir: Path) -> None:
    # when the model description is read
    info = client.get("/model").json()
    # then it identifies the very file being served and the contract it expects
    assert info["version"] == MODEL_VERSION
    assert info["sha256"] == sha256_of(model_dir / "model.npz")
    assert info["threshold"] == THRESHOLD
    assert info["created_at"].startswith("2026-")
    assert "roc_auc" in info["metrics"]
    assert info["feature_contract"] == json.loads(json.dumps(describe()))


# -- POST /predict -----------------------------------------------------------------------------
def test_the_original_payload_works_unchanged(client: httpx.Client, model_dir: Path) -> None:
    # given the original API's documented payload
    # when it is posted
    response = _predict(client, ORIGINAL_SAMPLE)
    # then it answers predicted_class as before, plus the probability, threshold and version
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"predicted_class", "probability", "threshold", "model_version"}
    model, _ = load_serving_model(model_dir)
    expected = model.predict_proba_record({**ORIGINAL_SAMPLE, "RegionID": 21, "Age": 46})
    assert answer["probability"] == pytest.approx(expected, abs=1e-12)
    assert answer["predicted_class"] == int(expected >= THRESHOLD)
    assert answer["threshold"] == THRESHOLD
    assert answer["model_version"] == MODEL_VERSION


def test_a_body_without_content_type_is_still_read(client: httpx.Client) -> None:
    # given a client that sends JSON without a Content-Type (the original API accepted it)
    response = client.post("/predict", content=json.dumps(ORIGINAL_SAMPLE).encode())
    # then it is answered like any other
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("past_accident", "expected_class"), [("Yes", 1), ("No", 0)])
def test_the_prediction_follows_the_model(
    client: httpx.Client, past_accident: str, expected_class: int
) -> None:
    # given the fixture model, where a past accident pushes the score by +/-3
    body = {**ORIGINAL_SAMPLE, "PastAccident": past_accident}
    # when predicted / then the class follows it
    assert _predict(client, body).json()["predicted_class"] == expected_class


def test_unknowns_and_optional_features(client: httpx.Client) -> None:
    # given every original field unknown, and then every feature known
    all_unknown = dict.fromkeys(ORIGINAL_SAMPLE)
    everything = {**ORIGINAL_SAMPLE, "VehicleAge": "1-2 Year", "SalesChannelID": 26}
    everything["DaysSinceCreated"] = 217
    # when posted / then both are answered
    for body in (all_unknown, everything):
        response = _predict(client, body)
        assert response.status_code == 200, response.text
        assert 0.0 <= response.json()["probability"] <= 1.0


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"Age": 150}, "Age", "a whole number from 18 to 100"),
        ({"Age": 46.5}, "Age", "a whole number from 18 to 100"),
        ({"Gender": "F"}, "Gender", 'not one of the labels (got "F"); allowed: one of "Female"'),
        ({"HasDrivingLicense": True}, "HasDrivingLicense", "a whole number from 0 to 1"),
        ({"AnnualPremium": "£lots"}, "AnnualPremium", "a number from 0 to 1,000,000"),
        ({"AnnualPremium": -3}, "AnnualPremium", "out of range (got -3)"),
        ({"VehicleAge": "new"}, "VehicleAge", '"< 1 Year", "1-2 Year", "> 2 Years"'),
        ({"Salary": 1}, "Salary", "unknown field; the fields are "),
    ],
)
def test_each_rejection_names_the_field_and_what_is_allowed(
    client: httpx.Client, change: dict[str, Any], field: str, says: str
) -> None:
    # given a body with one wrong field
    body = {**ORIGINAL_SAMPLE, **change}
    # when posted / then 422 names that field and what is allowed
    error = _only_error(_predict(client, body))
    assert error["field"] == field
    assert error["loc"] == ["body", field]
    assert says in error["msg"], error["msg"]


def test_a_missing_required_field_is_named(client: httpx.Client) -> None:
    body = {k: v for k, v in ORIGINAL_SAMPLE.items() if k != "PastAccident"}
    error = _only_error(_predict(client, body))
    assert error["field"] == "PastAccident"
    assert "required (send null if unknown)" in error["msg"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"Gender": "Male",', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"", "expected a JSON object"),
        (b'"text"', "expected a JSON object"),
    ],
)
def test_a_body_that_is_not_an_object_is_a_422(
    client: httpx.Client, content: bytes, says: str
) -> None:
    response = client.post(
        "/predict", content=content, headers={"Content-Type": "application/json"}
    )
    error = _only_error(response)
    assert error["field"] == "body"
    assert says in error["msg"], error["msg"]


# -- POST /predict/batch -----------------------------------------------------------------------
def test_a_batch_answers_each_row_in_order(client: httpx.Client) -> None:
    # given rows that are also sent one by one
    rows = sample_requests(25, seed=21)
    singles = [_predict(client, row).json() for row in rows]
    # when sent as one batch
    response = client.post("/predict/batch", json={"rows": rows})
    # then every row gets the answer it gets alone, in order
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["model_version"] == MODEL_VERSION
    assert batch["threshold"] == THRESHOLD
    assert [p["predicted_class"] for p in batch["predictions"]] == [
        s["predicted_class"] for s in singles
    ]
    assert [p["probability"] for p in batch["predictions"]] == pytest.approx(
        [s["probability"] for s in singles], abs=1e-12
    )


def test_a_large_batch_is_answered(client: httpx.Client) -> None:
    # given the documented maximum of rows (scored off the event loop)
    rows = sample_requests(MAX_BATCH_ROWS, seed=22)
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["predictions"]) == MAX_BATCH_ROWS


def test_an_invalid_row_is_reported_by_index_and_field(client: httpx.Client) -> None:
    rows = sample_requests(5, seed=23)
    rows[3] = {**rows[3], "Age": 7}
    error = _only_error(client.post("/predict/batch", json={"rows": rows}))
    assert error["field"] == "rows[3].Age"
    assert error["loc"] == ["body", "rows", 3, "Age"]
    assert "a whole number from 18 to 100" in error["msg"]


def test_a_batch_above_the_maximum_is_refused(client: httpx.Client) -> None:
    rows = [ORIGINAL_SAMPLE] * (MAX_BATCH_ROWS + 1)
    error = _only_error(client.post("/predict/batch", json={"rows": rows}))
    assert error["field"] == "rows"
    assert f"1 to {MAX_BATCH_ROWS:,}" in error["msg"]


# -- limits, ids, metrics, logs ----------------------------------------------------------------
def test_an_oversized_body_gets_413(client: httpx.Client) -> None:
    # given a body over the single-prediction limit, declared and then streamed (chunked)
    padded = json.dumps({**ORIGINAL_SAMPLE, "Gender": "x" * MAX_PREDICT_BODY_BYTES}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(padded), 8192):
            yield padded[start : start + 8192]

    for response in (
        client.post("/predict", content=padded, headers={"Content-Type": "application/json"}),
        client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"}),
    ):
        # then it is refused with 413, saying what the limit is
        assert response.status_code == 413, response.text
        assert f"at most {MAX_PREDICT_BODY_BYTES:,} bytes" in response.json()["detail"]


def test_unknown_routes_answer_json_404(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_request_ids_are_kept_or_made(client: httpx.Client) -> None:
    # given a caller's id, no id, and an id with characters that could forge log lines
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    made = client.get("/healthz")
    forged = client.get("/healthz", headers={"X-Request-ID": 'x" "level": "critical'})
    # then a safe id is echoed, and otherwise a fresh one is made
    assert kept.headers["X-Request-ID"] == "trace-42.a:b"
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{8}", made.headers["X-Request-ID"])
    assert forged.headers["X-Request-ID"] != 'x" "level": "critical'


def test_metrics_count_requests_predictions_and_model(client: httpx.Client) -> None:
    # given a prediction and a rejection
    _predict(client, ORIGINAL_SAMPLE)
    _predict(client, {**ORIGINAL_SAMPLE, "Age": 3})
    # when the metrics are scraped
    response = client.get("/metrics")
    text = response.text
    # then requests (by route and status), latency, predictions by class and the model show up
    assert response.headers["content-type"].startswith("text/plain")
    assert 'predict_buy_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'predict_buy_http_requests_total{method="POST",route="/predict",status="422"}' in text
    assert "predict_buy_http_request_duration_seconds_bucket{" in text
    assert 'predict_buy_predictions_total{predicted_class="1"}' in text
    assert 'predict_buy_model_info{sha256="' in text and f'version="{MODEL_VERSION}"' in text


def test_logs_are_json_with_request_ids_and_no_personal_fields(
    client: httpx.Client, server: LiveServer
) -> None:
    # given requests carrying recognisable personal values, accepted and rejected
    marker_ok = {**ORIGINAL_SAMPLE, "AnnualPremium": "£98,765.43", "Age": 87}
    marker_bad = {**ORIGINAL_SAMPLE, "AnnualPremium": "£97,531.86xyz", "Gender": "Zorblax"}
    ok = client.post("/predict", json=marker_ok, headers={"X-Request-ID": "log-check-ok"})
    bad = client.post("/predict", json=marker_bad, headers={"X-Request-ID": "log-check-bad"})
    assert (ok.status_code, bad.status_code) == (200, 422)
    # when the server's log is read (the access line comes right after the response)
    records = server.wait_for_log("log-check-bad")
    text = server.log_path.read_text()
    # then every line is JSON, requests are logged under their id, and no value leaked
    by_id = {r["request_id"]: r for r in records if r.get("logger") == "service.access"}
    assert by_id["log-check-ok"]["status"] == 200
    assert by_id["log-check-ok"]["route"] == "/predict"
    assert by_id["log-check-bad"]["status"] == 422
    rejected = [r for r in records if r["request_id"] == "log-check-bad" and "fields" in r]
    assert rejected and set(rejected[0]["fields"]) == {"Gender", "AnnualPremium"}
    for value in ("98,765", "98765", "97,531", "97531", "Zorblax", "Female"):
        assert value not in text, f"personal value {value!r} leaked into the log"
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)


def test_every_feature_is_documented_in_openapi(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    schema = document["components"]["schemas"]["PredictRequest"]
    assert set(schema["properties"]) == set(FEATURE_NAMES)
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
