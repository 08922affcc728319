"""`GET /metrics`: Prometheus exposition text."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import MetricsDep
from service.core.metrics import METRICS_CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(service_metrics: MetricsDep) -> Response:
    """Requests and latency by route and status, predictions by class, the model's version."""
    return Response(service_metrics.render(), media_type=METRICS_CONTENT_TYPE)
