"""Hostile and careless clients against a real server: small answers, no 5xx, nothing leaked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ml.contract import ORIGINAL_API_FIELDS
from service.api.errors import (
    MAX_ERROR_BODY_BYTES,
    MAX_REPORTED_ERRORS,
    BatchShape,
    PrebuiltRejection,
    screen_batch,
)
from service.api.routes.predict import scored_inline
from service.core.config import Settings
from service.core.logging import JsonFormatter
from service.main import create_app
from service.schemas import MAX_BATCH_BODY_BYTES, ORIGINAL_SAMPLE
from tests.service.conftest import LiveServer

JSON_HEADERS = {"Content-Type": "application/json"}
DEADLINE_S = 20.0


def _rejection(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) <= MAX_ERROR_BODY_BYTES, f"422 of {len(response.content):,} B"
    answer = response.json()
    assert len(answer["detail"]) <= MAX_REPORTED_ERRORS
    return answer


# -- error amplification ---------------------------------------------------------------------
def test_thousands_of_empty_rows_get_a_small_422(client: httpx.Client) -> None:
    # given a 16 KB batch of 5,450 empty rows (seven missing fields each)
    body = b'{"rows":[' + b",".join([b"{}"] * 5_450) + b"]}"
    # when posted
    answer = _rejection(client.post("/predict/batch", content=body, headers=JSON_HEADERS))
    # then the answer lists the first errors and counts them all
    assert answer["error_count"] == 5_450 * len(ORIGINAL_API_FIELDS)
    assert (
        answer["detail"][0]["field"] == "rows[0].Gender"
        or "rows[0]" in answer["detail"][0]["field"]
    )


def test_megabytes_of_unknown_keys_get_a_small_422_while_others_are_served(
    server: LiveServer,
) -> None:
    # given a 4 MB batch row made of unknown keys
    keys = ",".join(f'"k{i}":0' for i in range(400_000))
    hostile = f'{{"rows":[{{{keys}}}]}}'.encode()
    assert 4_000_000 < len(hostile) < MAX_BATCH_BODY_BYTES

    async def run() -> tuple[httpx.Response, list[int]]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            pending = asyncio.create_task(
                http.post("/predict/batch", content=hostile, headers=JSON_HEADERS)
            )
            # when health checks arrive while it is in flight
            checks = [(await http.get("/healthz")).status_code for _ in range(20)]
            return await pending, checks

    rejected, checks = asyncio.run(asyncio.wait_for(run(), timeout=120))
    # then it gets a small 422 that counts every unknown key, and the others were answered
    answer = _rejection(rejected)
    assert answer["error_count"] >= 400_000
    assert checks == [200] * 20


def test_a_single_request_full_of_unknown_keys_gets_a_small_422(client: httpx.Client) -> None:
    # given a /predict body just under its 64 KiB limit, all unknown keys, one of them huge
    keys = {f"k{i}": 0 for i in range(3_500)} | {"x" * 20_000: 1}
    answer = _rejection(client.post("/predict", json={**ORIGINAL_SAMPLE, **keys}))
    # then names are cut short in the answer, and every error is counted
    assert answer["error_count"] == 3_501
    assert all(len(json.dumps(item["loc"])) < 200 for item in answer["detail"])


def test_an_enormous_premium_text_is_refused_by_its_length(client: httpx.Client) -> None:
    # given a batch row whose AnnualPremium is 7 MB of digits (the regex must never see it)
    row = {**ORIGINAL_SAMPLE, "AnnualPremium": "1" * 7_000_000}
    answer = _rejection(client.post("/predict/batch", json={"rows": [row]}))
    # then it is refused as too long, quoting only the start of the value
    item = answer["detail"][0]
    assert item["field"] == "rows[0].AnnualPremium"
    assert "longer than 64 characters" in item["msg"], item["msg"]
    assert len(item["msg"]) < 400


def test_unknown_field_names_are_counted_not_logged(
    client: httpx.Client, server: LiveServer
) -> None:
    # given unknown field names a client chose (they could be anything, even log-forging text)
    marker = 'Zq9"\n{"level": "critical"}'
    body = {**ORIGINAL_SAMPLE, marker: 1, "Salary_Zq9": 2}
    response = client.post("/predict", json=body, headers={"X-Request-ID": "unknown-names"})
    assert response.status_code == 422
    # when the log is read
    records = server.wait_for_log("unknown-names")
    # then the rejection counts them and no line carries them
    rejected = [r for r in records if r["request_id"] == "unknown-names" and "fields" in r]
    assert rejected and rejected[0]["unknown_fields"] == 2, rejected
    assert "Zq9" not in server.log_path.read_text(), "a client's field name reached the log"


# -- HTTP details ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/", "/healthz", "/readyz", "/model", "/metrics", "/openapi.json", "/docs", "/redoc"]
)
def test_head_works_wherever_get_does(client: httpx.Client, path: str) -> None:
    # given a GET route / when asked with HEAD / then same status and type, no body
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200, (head.status_code, got.status_code)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


def test_a_compressed_body_gets_415(client: httpx.Client) -> None:
    # given a gzip-encoded body / when posted / then 415 says to send it uncompressed
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    response = client.post("/predict", content=b"\x1f\x8b\x08\x00", headers=headers)
    assert response.status_code == 415, response.text
    assert "uncompressed" in response.json()["detail"]


def test_a_trailing_slash_is_not_redirected_to_the_host_header(client: httpx.Client) -> None:
    # given a trailing slash and a forged Host / when requested / then 404, no redirect anywhere
    response = client.post("/predict/", json=ORIGINAL_SAMPLE, headers={"Host": "evil.example"})
    assert response.status_code == 404, response.headers
    assert "location" not in response.headers


def test_a_nan_literal_is_refused_like_infinity(client: httpx.Client) -> None:
    for literal in ("NaN", "Infinity"):
        # given a body with a NaN or Infinity literal for a number
        body = json.dumps(ORIGINAL_SAMPLE).replace('"2305.40"', literal).encode()
        # when posted / then 422 at that field, not an answer for "unknown"
        answer = _rejection(client.post("/predict", content=body, headers=JSON_HEADERS))
        assert answer["detail"][0]["field"] == "AnnualPremium"
        assert "not a finite number" in answer["detail"][0]["msg"]


def test_messages_quote_values_as_json(client: httpx.Client) -> None:
    # given wrong values of several types / then each message quotes it as JSON would
    for value, quoted in (("Zorblax", '"Zorblax"'), (3.5, "3.5"), ([1], "[1]"), ("é\n", '"é\\n"')):
        answer = _rejection(client.post("/predict", json={**ORIGINAL_SAMPLE, "Gender": value}))
        assert f"(got {quoted})" in answer["detail"][0]["msg"], answer["detail"][0]["msg"]


def test_security_headers(client: httpx.Client) -> None:
    # when predictions (accepted and refused) and other routes are answered
    predicted = client.post("/predict", json=ORIGINAL_SAMPLE)
    refused = client.post("/predict", json={**ORIGINAL_SAMPLE, "Age": 3})
    batch = client.post("/predict/batch", json={"rows": [ORIGINAL_SAMPLE]})
    health = client.get("/healthz")
    # then nothing is sniffed, and predictions are never stored by a cache
    for response in (predicted, refused, batch, health):
        assert response.headers["x-content-type-options"] == "nosniff"
    for response in (predicted, refused, batch):
        assert response.headers["cache-control"] == "no-store"


def test_the_docs_work_offline(client: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        # given the documentation page
        html = client.get(page).text
        # then every script and stylesheet it loads is served by the service itself
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, html[:500]
        assert not [a for a in assets if "://" in a or a.startswith("//")], assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert "/openapi.json" in html


# -- disconnects and failures ------------------------------------------------------------------
def _metric(client: httpx.Client, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", client.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_client_that_disconnects_is_not_a_server_error(
    client: httpx.Client, server: LiveServer
) -> None:
    # given the counters before
    disconnects = _metric(client, "predict_buy_client_disconnects_total")
    errors = 'predict_buy_http_requests_total{method="POST",route="/predict",status="500"}'
    errors_before = _metric(client, errors)
    # when a client sends half a body and goes away
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{")
    # then it is counted as a client disconnect (waiting for the server to notice), not a 500
    deadline = time.monotonic() + DEADLINE_S
    while _metric(client, "predict_buy_client_disconnects_total") <= disconnects:
        assert time.monotonic() < deadline, "the disconnect was not counted"
        time.sleep(0.05)  # poll interval; bounded by the deadline
    assert _metric(client, errors) == errors_before
    assert "unexpected error" not in server.log_path.read_text()


class _BrokenPredictor:
    version = "broken"
    threshold = 0.5

    def predict_one(self, record: dict[str, object]) -> tuple[int, float]:
        raise RuntimeError("a bug")


def test_a_real_500_carries_its_request_id_in_the_answer_and_the_log(model_dir: Path) -> None:
    # given an app whose model fails, and its error log captured as JSON lines
    app = create_app(Settings(model_dir=model_dir))
    app.state.predictor = _BrokenPredictor()
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    errors_logger = logging.getLogger("service.errors")
    errors_logger.addHandler(handler)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.post("/predict", json=ORIGINAL_SAMPLE)

    try:
        # when a prediction is asked for
        response = asyncio.run(call())
    finally:
        errors_logger.removeHandler(handler)
    # then the 500 names its request id, and the log has the traceback under that id
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json()["request_id"] == request_id
    lines = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    logged = [r for r in lines if r["message"] == "unexpected error"]
    assert logged and logged[0]["request_id"] == request_id, lines
    assert "RuntimeError: a bug" in logged[0]["exception"]


def test_screened_and_validated_batches_report_unknown_keys_alike(client: httpx.Client) -> None:
    # given a row with one unknown key (pydantic reports it) and one with 30 (screened first)
    one = {**ORIGINAL_SAMPLE, "k0": 1}
    many = {**ORIGINAL_SAMPLE, **{f"k{i}": 1 for i in range(30)}}
    # when each is posted as a batch
    validated = _rejection(client.post("/predict/batch", json={"rows": [one]}))
    screened = _rejection(client.post("/predict/batch", json={"rows": [many]}))
    # then both name rows[0].k0 the same way, and count every unknown key
    assert validated["detail"][0] == screened["detail"][0], (validated, screened)
    assert (validated["error_count"], screened["error_count"]) == (1, 30)


def test_unknown_keys_spaced_from_their_colons_are_screened_too() -> None:
    # given 4 MB of unknown keys written with a space before each colon, as JSON allows
    keys = ",".join(f'"k{i}" :0' for i in range(400_000))
    hostile = f'{{"rows":[{{{keys}}}]}}'.encode()
    # when the body is screened
    with pytest.raises(PrebuiltRejection) as refused:
        screen_batch(hostile)
    # then it is refused before pydantic could build an error per key, and every key is counted
    answer = orjson.loads(refused.value.body)
    assert answer["error_count"] == 400_000
    assert len(refused.value.body) <= MAX_ERROR_BODY_BYTES


@pytest.mark.parametrize(
    ("rows", "row", "inline"),
    [
        (1, ORIGINAL_SAMPLE, True),
        (1_000, ORIGINAL_SAMPLE, True),  # ~5 ms of work: on the event loop
        (1_001, ORIGINAL_SAMPLE, False),  # more rows: a worker thread
        (5_450, {}, False),  # 16 KB that is 38,150 errors: a worker thread
        (1, {**ORIGINAL_SAMPLE, **{f"k{i}": 0 for i in range(30)}}, False),  # an error storm
        (1, {**ORIGINAL_SAMPLE, "AnnualPremium": "1" * 300_000}, False),  # over the byte bound
    ],
)
def test_only_small_well_shaped_batches_are_scored_on_the_event_loop(
    rows: int, row: dict[str, Any], inline: bool
) -> None:
    # given a batch body and the default settings
    raw = orjson.dumps({"rows": [row] * rows})
    # when the route decides where to score it
    decided = scored_inline(len(raw), BatchShape.of(raw), Settings())
    # then only small bodies of at most 1,000 rows that cannot hold an error per key stay inline
    assert decided is inline
