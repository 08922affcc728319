"""`POST /predict` (the original API, extended) and `POST /predict/batch`.

Both read the raw body and validate it with the request model's JSON validator: pydantic parses and
validates in one pass (in Rust), several times faster than `json.loads` followed by FastAPI's body
resolution. The OpenAPI document still describes the bodies by their models (service/main.py).

A single row is scored inline: cleaning and the compiled model's table lookups take ~4 µs, less
than parsing the request, so a thread hop (~50 µs) would cost more than it protects. A batch of up
to 1,000 rows (~5 ms of work) is scored inline too: a worker thread shares the GIL with the event
loop, which then waits up to the interpreter's switch interval (5 ms) for it anyway, and the hop
cost ~15% of batch throughput here (cross-CPU wake-ups). A larger batch, or one whose shape could
hold an error per key, is parsed, scored and serialised in a worker thread, so the event loop keeps
answering meanwhile.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.deps import MetricsDep, PredictorDep, SettingsDep
from service.api.errors import JSON, BatchShape, BodyValidationError, screen_batch
from service.core.config import Settings
from service.inference import Predictor
from service.schemas import (
    MAX_BATCH_ROWS,
    BatchRequest,
    BatchResponse,
    MessageResponse,
    PredictRequest,
    PredictResponse,
    ValidationErrorResponse,
)

router = APIRouter(tags=["prediction"])

# A real single request is ~250 bytes. A larger body may hold thousands of errors (64 KiB of
# unknown keys is ~10,000), each costing microseconds to find: it is validated in a thread.
PREDICT_INLINE_MAX_BYTES: Final = 4096

ModelT = TypeVar("ModelT", bound=BaseModel)
EXPLAIN_HELP: Final = "Add base_value and each feature group's exact contribution to the log-odds."
ExplainQuery = Annotated[bool, Query(description=EXPLAIN_HELP)]
# /predict reads `explain` itself (a declared parameter costs the hot path a resolver pass) and
# documents it here; it is parsed as FastAPI parses a bool query parameter.
EXPLAIN_PARAMETER: Final = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": EXPLAIN_HELP,
    "schema": {"type": "boolean", "default": False, "title": "Explain"},
}
_BOOLEAN: Final = TypeAdapter(bool)


def explain_requested(request: Request) -> bool:
    """The `explain` query parameter of a request; 422 naming it when it is not a boolean."""
    if not request.scope["query_string"]:  # the usual request: no query to parse
        return False
    raw = request.query_params.get("explain")
    if raw is None:
        return False
    try:
        return _BOOLEAN.validate_python(raw)
    except ValidationError as error:
        errors = error.errors(include_url=False)
        for item in errors:
            item["loc"] = ("query", "explain")
        raise RequestValidationError(errors) from None


_REJECTIONS: Final = {
    413: {"model": MessageResponse, "description": "Request body too large"},
    415: {"model": MessageResponse, "description": "A Content-Encoding other than identity"},
    422: {"model": ValidationErrorResponse, "description": "A field breaks the contract"},
}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route whose body is validated by `model`."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def parse_body(model: type[ModelT], raw: bytes) -> ModelT:
    """The body validated by `model`; BodyValidationError (422) naming each wrong field.

    The error items are described by the handler, not here: a hostile body can carry tens of
    thousands of errors, and the handler caps and builds them off the event loop.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise BodyValidationError(error) from None


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=_REJECTIONS,
    openapi_extra={**request_body(PredictRequest), "parameters": [EXPLAIN_PARAMETER]},
    summary="Predict one customer",
)
async def predict(request: Request) -> Response:
    """Whether one customer will buy: the original 7-field payload works unchanged.

    With `?explain=true` the answer adds base_value and each feature group's contribution.
    """
    explain = explain_requested(request)
    raw = await request.body()
    if len(raw) <= PREDICT_INLINE_MAX_BYTES:
        body = parse_body(PredictRequest, raw)
    else:  # far larger than any real request: whatever it holds, validate it off the loop
        body = await run_in_threadpool(parse_body, PredictRequest, raw)
    # The hot path reads app.state itself: each FastAPI dependency costs ~9 µs a request here,
    # more than the prediction. The other routes use the Annotated dependencies.
    predictor: Predictor = request.app.state.predictor
    contributions = None
    if explain:
        predicted_class, probability, contributions = predictor.explain_one(vars(body))
    else:
        predicted_class, probability = predictor.predict_one(vars(body))
    request.app.state.metrics.count_predictions(predicted_class, 1)
    payload = {
        "predicted_class": predicted_class,
        "probability": probability,
        "threshold": predictor.threshold,
        "model_version": predictor.version,
    }
    if contributions is not None:
        payload["base_value"] = predictor.base_value
        payload["contributions"] = contributions
    return Response(orjson.dumps(payload), media_type=JSON)


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=_REJECTIONS,
    openapi_extra=request_body(BatchRequest),
    summary=f"Predict up to {MAX_BATCH_ROWS:,} customers",
)
async def predict_batch(
    request: Request,
    predictor: PredictorDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    explain: ExplainQuery = False,
) -> Response:
    """Many customers in one request; predictions come back in the order of the rows.

    With `?explain=true` each prediction adds its contributions, and the answer the base value.
    """
    raw = await request.body()
    shape = BatchShape.of(raw)
    if scored_inline(len(raw), shape, settings):
        content, positives, total = score_batch(predictor, raw, explain, shape)
    else:
        content, positives, total = await run_in_threadpool(
            score_batch, predictor, raw, explain, shape
        )
    metrics.count_predictions(positives, total)
    return Response(content, media_type=JSON)


def scored_inline(size: int, shape: BatchShape, settings: Settings) -> bool:
    """Whether a batch body is scored on the event loop: small, few rows, no error storm."""
    return (
        size <= settings.batch_inline_max_bytes
        and shape.objects <= settings.batch_inline_max_rows + 1  # the rows and the body itself
        and not shape.suspicious
    )


def score_batch(
    predictor: Predictor, raw: bytes, explain: bool = False, shape: BatchShape | None = None
) -> tuple[bytes, int, int]:
    """Validate a batch body and score it: (serialised answer, rows of class 1, rows)."""
    screen_batch(raw, shape)
    rows = [vars(row) for row in parse_body(BatchRequest, raw).rows]
    if explain:
        classes, probabilities, contributions = predictor.explain_many(rows)
        predictions = [
            {"predicted_class": c, "probability": p, "contributions": terms}
            for c, p, terms in zip(classes, probabilities, contributions, strict=True)
        ]
    else:
        classes, probabilities = predictor.predict_many(rows)
        predictions = [
            {"predicted_class": c, "probability": p}
            for c, p in zip(classes, probabilities, strict=True)
        ]
    payload: dict[str, Any] = {
        "predictions": predictions,
        "threshold": predictor.threshold,
        "model_version": predictor.version,
    }
    if explain:
        payload["base_value"] = predictor.base_value
    return orjson.dumps(payload), sum(classes), len(rows)
