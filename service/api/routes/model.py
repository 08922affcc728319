"""`GET /model`: what is being served, where it came from and the contract it expects."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import PredictorDep
from service.schemas import ModelInfo

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo, summary="The served model")
async def model_info(predictor: PredictorDep) -> ModelInfo:
    """Version, sha256, training date, metrics, parameters and feature contract of the model,
    and each feature group's global importance and term shape."""
    metadata = predictor.metadata
    return ModelInfo(
        version=metadata.version,
        sha256=predictor.sha256,
        created_at=metadata.created_at,
        threshold=metadata.threshold,
        metrics=metadata.metrics,
        params=metadata.params,
        artefacts={name: entry.model_dump() for name, entry in metadata.artefacts.items()},
        training_data=metadata.training_data.model_dump(),
        library_versions=metadata.library_versions,
        feature_contract=metadata.feature_contract,
        explanation=metadata.explanation,
    )
