"""The FastAPI application: created by a factory, model loaded and verified in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from service.api.errors import (
    BodyValidationError,
    PrebuiltRejection,
    body_validation_handler,
    http_error_handler,
    prebuilt_rejection_handler,
    request_validation_handler,
)
from service.api.routes import docs, health, metrics, model, predict
from service.core.config import Settings, get_settings
from service.core.draining import Drain
from service.core.logging import AccessLog
from service.core.metrics import ServiceMetrics
from service.core.middleware import RequestObservabilityMiddleware
from service.core.model import ModelUnusable, load_model
from service.inference import Predictor
from service.schemas import (
    MAX_BATCH_BODY_BYTES,
    MAX_PREDICT_BODY_BYTES,
    BatchRequest,
    PredictRequest,
)

logger = logging.getLogger("service")

# Answers on these paths carry personal data: `Cache-Control: no-store`.
PREDICTION_PATHS: Final = frozenset({"/predict", "/predict/batch"})
# The version of the HTTP API (its paths and shapes), not of the package or the model.
API_VERSION: Final = "2.0.0"
DESCRIPTION: Final = """\
Predicts whether an insurance customer will buy an additional (vehicle) policy.

`POST /predict` accepts the original API's seven-field payload unchanged and answers its
`predicted_class`, plus the probability, the decision threshold and the model version. The other
model features are optional. Null (or an absent optional field) means unknown; so do the original
API's encodings of unknown, `"Switch": -1` and `"PastAccident": "Unknown"`, which get exactly the
answer null gets.
"""


class StartupError(RuntimeError):
    """The service cannot serve: its model artefact is missing, corrupt or incompatible."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and verify the model before the first request; refuse to start without it."""
    settings: Settings = app.state.settings
    try:
        compiled, metadata = load_model(settings.model_dir)
    except ModelUnusable as error:
        logger.critical("cannot serve: %s", error)
        raise StartupError(str(error)) from None
    predictor = Predictor(compiled, metadata)
    app.state.predictor = predictor
    app.state.metrics.set_model(predictor.version, predictor.sha256)
    app.state.ready = True
    app.state.drain.install()
    logger.info(
        "serving model",
        extra={
            "model_version": predictor.version,
            "sha256": predictor.sha256,
            "model_dir": str(settings.model_dir),
        },
    )
    try:
        yield
    finally:
        app.state.ready = False
        app.state.access_log.flush()


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request models, which the prediction routes validate
    themselves (service/api/routes/predict.py) and reference from their requestBody."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictRequest, BatchRequest):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        app.openapi_schema = document
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app (uvicorn calls this factory in each worker); the lifespan loads the model."""
    settings = settings or get_settings()
    app = FastAPI(
        # One router per resource, their routes listed flat rather than included: FastAPI keeps
        # an included router as a nested level matched on every request. Prediction comes first
        # (routes are tried in order, /predict is by far the busiest), then the docs routes.
        routes=[
            *(
                route
                for router in (predict.router, health.router, model.router, metrics.router)
                for route in router.routes
            ),
            *docs.router.routes,
            docs.assets_mount(),
        ],
        title="predict_buy_app",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The documentation pages are served offline by service/api/routes/docs.py.
        docs_url=None,
        redoc_url=None,
        # A redirect to add or drop a slash would be built from the Host header, pointing clients
        # anywhere; /predict/ is simply not a route.
        redirect_slashes=False,
        # The original API parsed JSON bodies sent without a Content-Type; so does this one.
        strict_content_type=False,
        # Unexpected errors and client disconnects are answered by the middleware, which has the
        # request id.
        exception_handlers={
            BodyValidationError: body_validation_handler,
            PrebuiltRejection: prebuilt_rejection_handler,
            RequestValidationError: request_validation_handler,
            HTTPException: http_error_handler,
        },
    )
    app.openapi = partial(openapi_document, app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.access_log = AccessLog(settings.access_log)
    app.state.drain = Drain(settings.drain_timeout_s)
    app.state.metrics.track_in_flight(lambda: len(app.state.drain.in_flight))
    app.state.predictor = None
    app.state.ready = False
    app.add_middleware(
        RequestObservabilityMiddleware,
        metrics=app.state.metrics,
        access_log=app.state.access_log,
        drain=app.state.drain,
        # Bodies above these are refused with 413 before they are read or parsed.
        max_body_bytes=MAX_PREDICT_BODY_BYTES,
        max_body_bytes_by_path={"/predict/batch": MAX_BATCH_BODY_BYTES},
        paths=frozenset(route.path for route in app.routes if isinstance(route, APIRoute)),
        no_store_paths=PREDICTION_PATHS,
    )
    return app
