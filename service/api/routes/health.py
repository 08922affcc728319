"""Health: the original API's `GET /`, liveness (`/healthz`) and readiness (`/readyz`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.errors import json_response
from service.schemas import HealthResponse, ReadyResponse, RootResponse

router = APIRouter(tags=["health"])

ROOT_MESSAGE = "predict_buy_app is running"


@router.get("/", response_model=RootResponse, summary="The original API's health answer")
async def root(request: Request) -> Response:
    """Kept for clients of the original API: `health_check: "OK"` and the model's version."""
    predictor = request.app.state.predictor
    payload = {
        "health_check": "OK",
        "model_version": predictor.version if predictor is not None else "none",
        "message": ROOT_MESSAGE,
        "status": "ok",
    }
    return json_response(payload, 200)


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
async def healthz() -> Response:
    """200 while the process answers HTTP; restart it if this fails."""
    return json_response({"status": "ok"}, 200)


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No verified model (shutting down)"}},
    summary="Readiness",
)
async def readyz(request: Request) -> Response:
    """200 once the model is loaded and its sha256 verified; 503 from the moment shutdown
    starts (while the requests in flight drain) and without a model."""
    predictor = getattr(request.app.state, "predictor", None)
    if request.app.state.drain.started:
        return json_response(
            {"status": "not ready", "model_version": None, "detail": "shutting down"}, 503
        )
    if predictor is None or not getattr(request.app.state, "ready", False):
        return json_response(
            {"status": "not ready", "model_version": None, "detail": "no verified model loaded"},
            503,
        )
    return json_response(
        {"status": "ready", "model_version": predictor.version, "detail": None}, 200
    )
