"""`python -m service`: check the settings, the model and the port, then serve with uvicorn.

Everything comes from the environment (see service/core/config.py and docs/service.md):
PREDICT_BUY_MODEL_DIR, PREDICT_BUY_HOST, PREDICT_BUY_PORT, PREDICT_BUY_WORKERS (or
WEB_CONCURRENCY), PREDICT_BUY_LOG_LEVEL, PREDICT_BUY_ACCESS_LOG, and the server's bounds.

Every start-up fault stops it here with one JSON log line and its own exit code, before any
worker starts:

  2  a wrong or unknown setting
  3  the model is missing, unreadable, corrupt, incompatible or not finite
  4  the address cannot be listened on (port in use, address not on this machine)
  5  several workers, and TMPDIR (default /tmp) is not writable for their shared metrics
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from functools import partial
from typing import Any

import uvicorn
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from service.core.config import Settings
from service.core.logging import logging_config
from service.core.metrics import MULTIPROCESS_ENV
from service.core.model import ModelUnusable, load_model
from service.core.server import BoundedHttpToolsProtocol

EXIT_BAD_SETTINGS = 2
EXIT_BAD_MODEL = 3
EXIT_CANNOT_LISTEN = 4
EXIT_NO_TEMP_DIR = 5

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
        "workers": settings.workers,
        "loop": "uvloop",
        # httptools with the header, time and connection bounds (service/core/server.py).
        "http": partial(BoundedHttpToolsProtocol, limits=settings.server_limits()),
        "timeout_keep_alive": settings.keep_alive_s,
        # Requests (tasks) past the connection bound get uvicorn's 503 too; connections past it
        # are refused by the protocol as they open.
        "limit_concurrency": settings.max_connections + 1,
        "log_config": logging_config(settings.log_level),
        "access_log": False,  # the app writes its own access line, with the request id
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


def listen(host: str, port: int) -> socket.socket:
    """The bound listening socket (as uvicorn binds it); OSError if the address is unusable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # the worker processes serve on it
    return sock


def metrics_directory(workers: int, environ: Mapping[str, str]) -> str | None:
    """A fresh directory for the workers' shared metrics, or None if one process (or the
    operator chose one); OSError if TMPDIR (default /tmp) is not writable."""
    if workers <= 1 or environ.get(MULTIPROCESS_ENV):
        return None
    return tempfile.mkdtemp(prefix="predict-buy-metrics-", dir=environ.get("TMPDIR", "/tmp"))  # noqa: S108 - the documented default, a fresh private directory in it


def serve(app: Any, settings: Settings, sock: socket.socket) -> int:
    """Run uvicorn on `sock` until stopped; EXIT_BAD_MODEL if a worker could not start."""
    config = uvicorn.Config(app, factory=isinstance(app, str), **uvicorn_options(settings))
    if settings.workers > 1:
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        failed = any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
        return EXIT_BAD_MODEL if failed else 0
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else EXIT_BAD_MODEL


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
        load_model(settings.model_dir)
    except ModelUnusable as error:
        logger.critical("cannot serve: %s", error)
        return EXIT_BAD_MODEL
    try:
        metrics_dir = metrics_directory(settings.workers, os.environ)
    except OSError as error:
        logger.critical(
            "cannot start: %d workers share their metrics through files and TMPDIR (default "
            "/tmp) is not writable (%s); mount a writable tmpfs at /tmp, set TMPDIR, or run one "
            "worker (WEB_CONCURRENCY=1)",
            settings.workers,
            error,
        )
        return EXIT_NO_TEMP_DIR
    try:
        sock = listen(settings.host, settings.port)
    except OSError as error:
        logger.critical(
            "cannot start: cannot listen on %s port %d (%s); free the port or set "
            "PREDICT_BUY_PORT / PREDICT_BUY_HOST",
            settings.host,
            settings.port,
            error.strerror or error,
        )
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return EXIT_CANNOT_LISTEN
    if metrics_dir is not None:
        os.environ[MULTIPROCESS_ENV] = metrics_dir  # read by every worker's ServiceMetrics
    logger.info(
        "listening on http://%s:%d",
        settings.host,
        settings.port,
        extra={"workers": settings.workers, "model_dir": str(settings.model_dir)},
    )
    try:
        return serve("service.main:create_app", settings, sock)
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
