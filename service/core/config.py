"""Service settings, read from the environment (prefix PREDICT_BUY_) and checked on start-up."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class ServerLimits:
    """Per-worker bounds on what one client may hold (service/core/server.py enforces them)."""

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


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
        262_144,
        ge=0,
        description="Batch bodies up to this size and batch_inline_max_rows rows are scored on "
        "the event loop (~5 ms for 1,000 rows, what a worker thread would hold the GIL for "
        "anyway); larger ones, and any whose shape could hold an error per key, in a worker "
        "thread, so a big batch never stalls other requests.",
    )
    batch_inline_max_rows: int = Field(
        1_000,
        ge=0,
        le=10_000,
        description="Batches of more rows than this are scored in a worker thread.",
    )

    # Bounds on what one client may hold (service/core/server.py); per worker process.
    max_header_bytes: int = Field(
        16_384, ge=1_024, le=1_048_576, description="Request line and headers above this: 431."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3_600,
        description="Headers not received this long after the request "
        "(or connection) began: 408, connection closed.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=3_600, description="A body not received this long after its headers: 408."
    )
    keep_alive_s: float = Field(
        65.0,
        gt=0,
        le=3_600,
        description="An idle keep-alive connection is closed after this "
        "(above the load balancer's 60 s idle timeout, so the balancer closes first).",
    )
    max_connections: int = Field(
        512,
        ge=1,
        le=100_000,
        description="Open connections (or requests) per worker above this: 503.",
    )
    drain_timeout_s: float = Field(
        10.0,
        ge=0,
        le=3_600,
        description="On SIGTERM, how long /readyz answers 503 while the "
        "requests in flight finish, at most, before the server stops listening.",
    )

    def server_limits(self) -> ServerLimits:
        """The bounds the HTTP protocol enforces."""
        return ServerLimits(
            max_header_bytes=self.max_header_bytes,
            header_timeout_s=self.header_timeout_s,
            body_timeout_s=self.body_timeout_s,
            max_connections=self.max_connections,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
