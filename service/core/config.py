"""Service settings, read from the environment (prefix PREDICT_BUY_) and checked on start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the model is, where to listen, how many workers, how to log.

    A wrong value (a port of "eighty", zero workers) stops the service before it starts.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREDICT_BUY_", frozen=True, extra="forbid", validate_by_name=True
    )

    model_dir: Path = Field(
        Path("models"), description="Directory holding model.npz and model.json."
    )
    host: str = Field("127.0.0.1", description="Address to listen on (the image uses 0.0.0.0).")
    port: int = Field(8000, ge=1, le=65_535, description="TCP port to listen on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("PREDICT_BUY_WORKERS", "WEB_CONCURRENCY"),
        description="Worker processes (PREDICT_BUY_WORKERS, or the conventional WEB_CONCURRENCY).",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Lowest level written to the JSON log."
    )
    access_log: bool = Field(True, description="Write one JSON line per request.")
    batch_inline_max_bytes: int = Field(
        16_384,
        ge=0,
        description="Batch bodies up to this size (~50 rows) are scored on the event loop; larger "
        "ones in a worker thread, so a big batch never stalls other requests.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
