"""ECR's scan findings read by infra.image_scan, against moto's ECR API over HTTP.

moto answers DescribeImageScanFindings for an image once a scan was started (ECR starts it on
push); the findings each test needs are configured through moto's own API, so the module reads a
real HTTP answer with the shape ECR gives.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest

from infra.image_scan import (
    ImageScanError,
    blocking_findings,
    require_clean_scan,
    scan_verdict,
    wait_for_scan,
)

REGION = "eu-west-2"


def pushed_image(ecr: Any) -> tuple[str, str]:
    """A fresh repository (scan on push) with one image; returns (repository, digest)."""
    repository = f"scan-{uuid.uuid4().hex[:8]}/nonprod/predict_buy_app"
    ecr.create_repository(
        repositoryName=repository, imageScanningConfiguration={"scanOnPush": True}
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {},
            "layers": [{"digest": "sha256:" + uuid.uuid4().hex * 2}],
        }
    )
    answer = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag="v0.1.0")
    return repository, str(answer["image"]["imageId"]["imageDigest"])


def configure_findings(moto_url: str, repository: str, digest: str, counts: dict[str, int]) -> None:
    """What ECR will answer for this digest's scan (moto's API for static scan results)."""
    result = {
        "registryId": "123456789012",
        "repositoryName": repository,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed."},
        "imageScanFindings": {"findings": [], "findingSeverityCounts": counts},
    }
    request = urllib.request.Request(  # noqa: S310 (the test's own moto_server on 127.0.0.1)
        f"{moto_url}/moto-api/static/ecr/scan-finding-results",
        data=json.dumps({"results": [result], "region": REGION}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    assert moto_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback only)
        assert answer.status in (200, 201), answer.status


def test_a_clean_scan_passes_and_reports_its_counts(moto_ecr: str, ecr: Any) -> None:
    # given an image whose scan on push found only LOW and MEDIUM issues
    repository, digest = pushed_image(ecr)
    ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    configure_findings(moto_ecr, repository, digest, {"LOW": 3, "MEDIUM": 1})

    # when
    verdict = scan_verdict(ecr, repository, digest, threshold="HIGH", timeout_seconds=5)

    # then nothing blocks the release
    assert verdict.status == "COMPLETE"
    assert verdict.counts == {"LOW": 3, "MEDIUM": 1}
    assert verdict.blocking == {}
    require_clean_scan(verdict)


def test_a_finding_at_the_threshold_blocks_the_release(moto_ecr: str, ecr: Any) -> None:
    # given an image with one CRITICAL finding
    repository, digest = pushed_image(ecr)
    ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    configure_findings(moto_ecr, repository, digest, {"CRITICAL": 1, "LOW": 2})

    # when
    verdict = scan_verdict(ecr, repository, digest, threshold="HIGH", timeout_seconds=5)

    # then the error names the count, the severity and the threshold
    with pytest.raises(ImageScanError) as caught:
        require_clean_scan(verdict)
    message = str(caught.value)
    assert "found 1 CRITICAL" in message and "threshold HIGH" in message, message
    assert digest in message


def test_no_scan_within_the_deadline_is_refused(ecr: Any) -> None:
    # given an image whose scan never started (scan on push switched off, say)
    repository, digest = pushed_image(ecr)

    # when / then waiting ends at the deadline with a clear reason
    with pytest.raises(ImageScanError, match="did not finish within 0 s") as caught:
        wait_for_scan(ecr, repository, digest, timeout_seconds=0.2, poll_seconds=0.05)
    assert "scans on push" in str(caught.value)


def test_a_failed_scan_is_not_a_pass() -> None:
    # given an ECR answer for a scan that failed
    class FailedScan:
        def describe_image_scan_findings(self, **_: Any) -> dict[str, Any]:
            return {"imageScanStatus": {"status": "FAILED", "description": "unsupported"}}

    # when / then
    with pytest.raises(ImageScanError, match="ended with status FAILED"):
        wait_for_scan(FailedScan(), "r", "sha256:" + "a" * 64, timeout_seconds=1)


@pytest.mark.parametrize(
    ("counts", "threshold", "expected"),
    [
        ({"HIGH": 2, "LOW": 5}, "HIGH", {"HIGH": 2}),
        ({"HIGH": 2, "LOW": 5}, "CRITICAL", {}),
        ({"MEDIUM": 1}, "medium", {"MEDIUM": 1}),
        ({"UNDEFINED": 1}, "HIGH", {"UNDEFINED": 1}),
        ({"INFORMATIONAL": 0, "CRITICAL": 0}, "LOW", {}),
    ],
)
def test_blocking_findings(counts: dict[str, int], threshold: str, expected: dict) -> None:
    # given / when / then unscored findings count as HIGH, zero counts never block
    assert blocking_findings(counts, threshold) == expected


def test_an_unknown_threshold_names_the_allowed_values() -> None:
    with pytest.raises(ImageScanError, match="not one of INFORMATIONAL, LOW, MEDIUM"):
        blocking_findings({}, "SEVERE")
