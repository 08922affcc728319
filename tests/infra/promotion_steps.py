"""The promotion's command lines as the stacks and publish run them, shared by the registry tests.

tests/infra/test_promote.py runs them on a tiny image, tests/image on the real service image.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from infra.components.promotion import promote_command
from tests.conftest import REPO_ROOT

NONPROD = "ce7-grp-1/nonprod/predict_buy_app"
PROD = "ce7-grp-1/prod/predict_buy_app"
TIMEOUT_S = 600


def run_promotion(
    registry: str, version: str, digest: str | None
) -> subprocess.CompletedProcess[str]:
    """The prod stack's command line, run as its Command runs it (shell, repository root)."""
    command = promote_command(
        sys.executable, f"{registry}/{NONPROD}", f"{registry}/{PROD}", version, digest
    )
    return subprocess.run(
        shlex.split(command), cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def record_evidence(registry: str, version: str, digest: str) -> subprocess.CompletedProcess[str]:
    """What publish runs after its smoke test: tag the digest `verified-<version>`.

    --no-scan, which only a loopback registry accepts (ECR's scan findings are tested on moto).
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.release_evidence",
            "--repository",
            f"{registry}/{NONPROD}",
            "--version",
            version,
            "--digest",
            digest,
            "--no-scan",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
