"""ECR's own scan findings for one image digest, judged against a severity threshold.

The repositories scan on push (basic scanning; enhanced scanning reports the same summary). The
publish job calls this through `python -m infra.release_evidence` after its smoke test: it waits,
polling with a deadline, until ECR reports the scan of that digest as finished, then refuses the
image when any finding is at or above the threshold (default HIGH). No third-party scanner runs in
a job that holds cloud credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# ECR's severities, lowest first. UNDEFINED (no score yet) counts as HIGH: unknown is not safe.
SEVERITIES: Final = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
UNSCORED: Final = {"UNDEFINED": "HIGH", "UNTRIAGED": "HIGH"}
DEFAULT_THRESHOLD: Final = "HIGH"
FINISHED: Final = ("COMPLETE", "ACTIVE")  # basic scanning says COMPLETE, enhanced says ACTIVE
PENDING: Final = ("IN_PROGRESS", "PENDING")
DEFAULT_TIMEOUT_SECONDS: Final = 900.0
POLL_SECONDS: Final = 10.0


class ImageScanError(RuntimeError):
    """The scan did not finish, could not be read, or found something at or above the threshold."""


@dataclass(frozen=True)
class ScanVerdict:
    """What ECR found in one digest and which of it blocks the release."""

    repository: str
    digest: str
    status: str
    counts: dict[str, int]
    blocking: dict[str, int]
    threshold: str


def check_threshold(threshold: str) -> str:
    """The threshold in ECR's spelling; raises naming the allowed values."""
    value = threshold.strip().upper()
    if value not in SEVERITIES:
        raise ImageScanError(
            f"severity threshold {threshold!r} is not one of {', '.join(SEVERITIES)}"
        )
    return value


def blocking_findings(counts: Mapping[str, int], threshold: str) -> dict[str, int]:
    """The severity counts at or above `threshold` (unscored findings count as HIGH)."""
    floor = SEVERITIES.index(check_threshold(threshold))
    blocking: dict[str, int] = {}
    for severity, count in counts.items():
        ranked = UNSCORED.get(severity.upper(), severity.upper())
        rank = SEVERITIES.index(ranked) if ranked in SEVERITIES else len(SEVERITIES)
        if count and rank >= floor:
            blocking[severity] = int(count)
    return blocking


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def wait_for_scan(
    client: Any,
    repository: str,
    digest: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """ECR's DescribeImageScanFindings answer once the scan of `digest` has finished."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = clock() + timeout_seconds
    last = "no scan found"
    while True:
        try:
            answer = client.describe_image_scan_findings(
                repositoryName=repository, imageId={"imageDigest": digest}
            )
        except ClientError as error:
            if _code(error) != "ScanNotFoundException":
                raise ImageScanError(
                    f"could not read the scan of {repository}@{digest} ({_code(error)}: {error}); "
                    "the credentials need ecr:DescribeImageScanFindings on the repository"
                ) from error
            answer = None
        except BotoCoreError as error:
            raise ImageScanError(
                f"could not read the scan of {repository}@{digest}: {error}"
            ) from error
        if answer is not None:
            status = str(answer.get("imageScanStatus", {}).get("status", "UNKNOWN"))
            if status in FINISHED:
                return dict(answer)
            if status not in PENDING:
                description = answer.get("imageScanStatus", {}).get("description", "")
                raise ImageScanError(
                    f"the scan of {repository}@{digest} ended with status {status} "
                    f"({description}); an image that was not scanned is not verified"
                )
            last = f"status {status}"
        if clock() >= deadline:
            raise ImageScanError(
                f"the scan of {repository}@{digest} did not finish within {timeout_seconds:.0f} s "
                f"({last}); check that the repository scans on push (imageScanningConfiguration)"
            )
        sleep(poll_seconds)


def scan_verdict(
    client: Any,
    repository: str,
    digest: str,
    threshold: str = DEFAULT_THRESHOLD,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> ScanVerdict:
    """Wait for the scan of `digest`, then judge its severity counts against `threshold`."""
    threshold = check_threshold(threshold)
    answer = wait_for_scan(client, repository, digest, timeout_seconds, poll_seconds)
    counts = {
        str(severity): int(count)
        for severity, count in (
            answer.get("imageScanFindings", {}).get("findingSeverityCounts", {}) or {}
        ).items()
    }
    return ScanVerdict(
        repository=repository,
        digest=digest,
        status=str(answer["imageScanStatus"]["status"]),
        counts=counts,
        blocking=blocking_findings(counts, threshold),
        threshold=threshold,
    )


def require_clean_scan(verdict: ScanVerdict) -> None:
    """Raise when the verdict has findings at or above its threshold, naming them."""
    if verdict.blocking:
        found = ", ".join(
            f"{count} {severity}" for severity, count in sorted(verdict.blocking.items())
        )
        raise ImageScanError(
            f"ECR's scan of {verdict.repository}@{verdict.digest} found {found} "
            f"(threshold {verdict.threshold}: findings at or above it block the release); fix "
            "the image (base packages, dependencies) and publish a new version"
        )
