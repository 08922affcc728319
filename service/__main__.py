"""`python -m service`: check the settings and the model, then serve with uvicorn.

Everything comes from the environment (see service/core/config.py and docs/service.md):
PREDICT_BUY_MODEL_DIR, PREDICT_BUY_HOST, PREDICT_BUY_PORT, PREDICT_BUY_WORKERS (or
WEB_CONCURRENCY), PREDICT_BUY_LOG_LEVEL, PREDICT_BUY_ACCESS_LOG.

A wrong setting or a missing, corrupt or incompatible model stops it here with one JSON log line
and a non-zero exit code, before any worker starts.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import uvicorn
from pydantic import ValidationError

from ml.artefact import ArtefactError, load_serving_model
from service.core.config import Settings
from service.core.logging import logging_config
from service.core.metrics import MULTIPROCESS_ENV

EXIT_BAD_SETTINGS = 2
EXIT_BAD_MODEL = 3

logger = logging.getLogger("service")


def _settings_problem(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else "settings"
        variable = name if name.isupper() else f"PREDICT_BUY_{name.upper()}"
        problems.append(f"{variable}: {item['msg']} (got {item.get('input')!r})")
    return "invalid setting " + "; ".join(problems)


# Read by the training pipeline, not by the service: set in the same shell, they are no typo.
PIPELINE_VARIABLES = frozenset({"PREDICT_BUY_ACCEPT_BELOW_GATE"})


def setting_variables() -> set[str]:
    """Every environment variable the service reads."""
    names = {f"PREDICT_BUY_{name.upper()}" for name in Settings.model_fields}
    return names | {"PREDICT_BUY_WORKERS", "WEB_CONCURRENCY"}


def unknown_variables(environ: Mapping[str, str]) -> str:
    """PREDICT_BUY_* variables nobody reads (a typo would be silently ignored)."""
    known = setting_variables() | PIPELINE_VARIABLES
    return ", ".join(sorted(k for k in environ if k.startswith("PREDICT_BUY_") and k not in known))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn runs the service (the benchmark runs its baseline with the same options)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": logging_config(settings.log_level),
        "access_log": False,  # the app writes its own access line, with the request id
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


def main(argv: list[str]) -> int:
    """Serve until stopped; the exit code says why it did not start."""
    if argv:
        print(__doc__, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    logging.config.dictConfig(logging_config("info"))
    if unknown := unknown_variables(os.environ):
        known = ", ".join(sorted(setting_variables()))
        logger.critical("cannot start: unknown setting %s; the settings are %s", unknown, known)
        return EXIT_BAD_SETTINGS
    try:
        settings = Settings()
    except ValidationError as error:
        logger.critical("cannot start: %s", _settings_problem(error))
        return EXIT_BAD_SETTINGS
    try:
        load_serving_model(settings.model_dir)
    except ArtefactError as error:
        logger.critical("cannot serve: %s", error)
        return EXIT_BAD_MODEL
    metrics_dir = None
    if settings.workers > 1 and not os.environ.get(MULTIPROCESS_ENV):
        # Workers share their counters through files here, so /metrics covers all of them.
        metrics_dir = tempfile.mkdtemp(prefix="predict-buy-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        uvicorn.run("service.main:create_app", factory=True, **uvicorn_options(settings))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
