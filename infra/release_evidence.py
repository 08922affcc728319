"""Write the evidence promotion requires: an immutable `verified-<version>` tag on the digest.

The publish job runs `python -m infra.release_evidence --repository <nonprod repository URL>
--version <v> --digest <sha256:...>` as its last step, after its smoke test of that exact digest
passed (a failed smoke test ends the job before this step). The module then:
  1. waits for ECR's own scan of the digest (scan on push) and refuses it when a finding is at or
     above the threshold (infra.image_scan; default HIGH);
  2. tags the digest `verified-<version>` in the nonprod repository (skopeo, by digest); a tag
     that already names this digest is success, one naming another digest fails (tags are
     immutable, so evidence can never move to other content).
Only the deploy role (branch main, the publish job) may push to the nonprod repository, so only
the publish job can write the evidence. infra.promote refuses to copy a release without it.
A registry on this machine's loopback (the tests' docker-registry) has no scanner: there, and only
there, `--no-scan` skips step 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from infra.image_scan import (
    DEFAULT_THRESHOLD,
    DEFAULT_TIMEOUT_SECONDS,
    ImageScanError,
    require_clean_scan,
    scan_verdict,
)
from infra.promote import (
    DIGEST,
    ECR_HOST,
    EVIDENCE_PREFIX,
    LOOPBACK_HOSTS,
    REPOSITORY,
    VERSION,
    PromotionError,
    Skopeo,
    evidence_tag,
    registry_auth,
)

__all__ = ["EVIDENCE_PREFIX", "EvidenceError", "evidence_tag", "main", "write_evidence"]


class EvidenceError(RuntimeError):
    """The evidence could not be written; the message says which image and why."""


@dataclass(frozen=True)
class EvidenceReport:
    repository: str
    version: str
    digest: str
    tag: str
    added: bool
    scan: dict[str, int] | None


def write_evidence(skopeo: Skopeo, repository: str, version: str, digest: str) -> bool:
    """Tag `repository@digest` as `verified-<version>`; False when it already was (a re-run)."""
    if not REPOSITORY.fullmatch(repository):
        raise EvidenceError(f"repository {repository!r} is not host/path without a tag")
    if not VERSION.fullmatch(version):
        raise EvidenceError(f"version {version!r} is not SemVer: expected e.g. 0.1.0 (no 'v')")
    if not DIGEST.fullmatch(digest):
        raise EvidenceError(f"digest {digest!r} is not sha256:<64 hex>")
    tag = evidence_tag(version)
    try:
        existing = skopeo.digest_of(f"{repository}:{tag}")
        if existing == digest:
            return False
        if existing is not None:
            raise EvidenceError(
                f"{repository}:{tag} already names {existing}, not {digest}: the evidence of "
                f"version {version} belongs to other content; publish a new version"
            )
        release = skopeo.digest_of(f"{repository}:v{version}")
        if release != digest:
            raise EvidenceError(
                f"{repository}:v{version} is {release}, not {digest}: evidence is written only "
                "for the digest the release tag names"
            )
        skopeo.copy(f"{repository}@{digest}", f"{repository}:{tag}")
        landed = skopeo.digest_of(f"{repository}:{tag}")
    except PromotionError as error:
        raise EvidenceError(str(error)) from error
    if landed != digest:
        raise EvidenceError(f"after tagging, {repository}:{tag} is {landed}, not {digest}")
    return True


def _ecr_parts(repository: str) -> tuple[str, str] | None:
    """(region, repository name) of an ECR repository URL, or None for another registry."""
    host, _, name = repository.partition("/")
    match = ECR_HOST.fullmatch(host)
    return (match.group(2), name) if match else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.release_evidence",
        description="After the smoke test: check ECR's scan, then tag the digest verified-<v>.",
    )
    parser.add_argument("--repository", required=True, help="nonprod repository URL, no tag")
    parser.add_argument("--version", required=True, help="the release, e.g. 0.1.0")
    parser.add_argument("--digest", required=True, help="the digest the smoke test passed")
    parser.add_argument(
        "--severity-threshold",
        default=DEFAULT_THRESHOLD,
        help=f"lowest severity that blocks the release (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--scan-timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait"
    )
    parser.add_argument(
        "--no-scan", action="store_true", help="loopback registries only (tests): skip the scan"
    )
    parser.add_argument("--skopeo", default="skopeo", help="skopeo binary (default: from PATH)")
    args = parser.parse_args(argv)
    host = args.repository.split("/", 1)[0].rsplit(":", 1)[0]
    scan: dict[str, int] | None = None
    try:
        ecr = _ecr_parts(args.repository)
        if args.no_scan:
            if host not in LOOPBACK_HOSTS:
                raise EvidenceError(
                    f"--no-scan is for registries on this machine only, not {host}: a release "
                    "is verified only with ECR's scan"
                )
        elif ecr is None:
            raise EvidenceError(
                f"{args.repository} is not an ECR repository: its scan findings cannot be read"
            )
        else:
            import boto3  # only when reading ECR

            region, name = ecr
            verdict = scan_verdict(
                boto3.client("ecr", region_name=region),
                name,
                args.digest,
                threshold=args.severity_threshold,
                timeout_seconds=args.scan_timeout,
            )
            require_clean_scan(verdict)
            scan = verdict.counts
        with registry_auth([args.repository]):
            added = write_evidence(Skopeo(args.skopeo), args.repository, args.version, args.digest)
    except (EvidenceError, ImageScanError, PromotionError) as error:
        print(f"release evidence refused: {error}", file=sys.stderr)
        return 1
    report = EvidenceReport(
        args.repository, args.version, args.digest, evidence_tag(args.version), added, scan
    )
    print(json.dumps(asdict(report), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
