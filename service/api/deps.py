"""Dependencies, declared once as Annotated aliases; tests swap them with dependency_overrides.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread pool, a
~50 µs hop per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.core.config import Settings
from service.core.metrics import ServiceMetrics
from service.inference import Predictor


async def get_predictor(request: Request) -> Predictor:
    """The model loaded and verified by the lifespan (it refuses to start without one)."""
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
