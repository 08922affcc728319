"""Promote a release from the nonprod repository to prod by digest, with skopeo.

The prod stack runs this module (`python -m infra.promote ...`, from a pulumi-command Command) and
the tests run it against a local registry: one code path. Steps:
  1. the source tag v<version> must exist and hold the expected digest (the one nonprod exported),
     and the source's evidence tag verified-<version> must name that same digest: it is written
     only by the publish job after its smoke test and ECR's scan passed (infra.release_evidence),
     so an image that was not smoke-tested and scanned is never promoted;
  2. if prod already holds v<version> with that digest, nothing is copied (re-runs change nothing);
     with another digest, fail (release tags are immutable);
  3. otherwise `skopeo copy --all --preserve-digests docker://<source>@<digest> docker://<dest>:v<v>`;
  4. read the manifest back from prod and check its sha256 equals the expected digest.
Rollback (no --digest): the release must already be in prod; its digest is read from there and
checked against the nonprod tag when that still exists. Nothing is copied.
The last line on stdout is a JSON report: source, destination, version, digest, copied.
ECR credentials are fetched at run time for this process only (boto3, ambient AWS credentials)
and written to a private temporary auth file for skopeo, unless REGISTRY_AUTH_FILE is already set.
Only the standard library is needed unless a registry is ECR. Registries on 127.0.0.1/localhost
(the tests' local registry) are reached without TLS verification, as Docker does by default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
REPOSITORY = re.compile(r"^[A-Za-z0-9.-]+(?::\d+)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")
NOT_FOUND_MARKERS: Final = ("manifest unknown", "name unknown", "not found", "404")
SKOPEO_TIMEOUT_SECONDS: Final = 900
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "[::1]")
EVIDENCE_PREFIX: Final = "verified-"


def evidence_tag(version: str) -> str:
    """The tag that says `version`'s digest passed publish's smoke test and ECR's scan."""
    return f"{EVIDENCE_PREFIX}{version}"


class PromotionError(RuntimeError):
    """The promotion cannot be done or could not be verified; the message says which and why."""


@dataclass(frozen=True)
class PromotionReport:
    source: str
    destination: str
    version: str
    digest: str
    copied: bool


def tls_verify(reference: str) -> str:
    """`false` only for registries on this machine's loopback, as Docker treats 127.0.0.0/8."""
    host = reference.split("/", 1)[0].rsplit(":", 1)[0]
    return "false" if host in LOOPBACK_HOSTS else "true"


class Skopeo:
    """The skopeo calls promotion needs: read a tag's digest, copy by digest."""

    def __init__(self, binary: str = "skopeo") -> None:
        self.binary = binary

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(  # noqa: S603 (argument list, no shell)
                [self.binary, *args],
                capture_output=True,
                check=False,
                timeout=SKOPEO_TIMEOUT_SECONDS,
            )
        except FileNotFoundError:
            raise PromotionError(
                f"{self.binary} is not installed: install skopeo (apt-get install skopeo)"
            ) from None

    def digest_of(self, reference: str) -> str | None:
        """sha256 of the manifest `reference` (repo:tag) points to, or None when there is none."""
        answer = self._run(
            [
                "inspect",
                "--raw",
                f"--tls-verify={tls_verify(reference)}",
                f"docker://{reference}",
            ]
        )
        if answer.returncode != 0:
            message = answer.stderr.decode(errors="replace").strip()
            if any(marker in message.lower() for marker in NOT_FOUND_MARKERS):
                return None
            raise PromotionError(f"could not read {reference}: {message}")
        return "sha256:" + hashlib.sha256(answer.stdout).hexdigest()

    def copy(self, source: str, destination: str) -> None:
        answer = self._run(
            [
                "copy",
                "--all",
                "--preserve-digests",
                f"--src-tls-verify={tls_verify(source)}",
                f"--dest-tls-verify={tls_verify(destination)}",
                f"docker://{source}",
                f"docker://{destination}",
            ]
        )
        if answer.returncode != 0:
            message = answer.stderr.decode(errors="replace").strip()
            raise PromotionError(f"skopeo could not copy {source} to {destination}: {message}")


def _check_inputs(source: str, destination: str, version: str, digest: str | None) -> None:
    for label, repository in (("source", source), ("destination", destination)):
        if not REPOSITORY.fullmatch(repository):
            raise PromotionError(
                f"{label} repository {repository!r} is not valid: expected host/path without a "
                "tag, e.g. 123456789012.dkr.ecr.eu-west-2.amazonaws.com/"
                "ce7-grp-1/prod/predict_buy_app"
            )
    if not VERSION.fullmatch(version):
        raise PromotionError(f"version {version!r} is not SemVer: expected e.g. 0.1.0 (no 'v')")
    if digest is not None and not DIGEST.fullmatch(digest):
        raise PromotionError(f"digest {digest!r} is not valid: expected sha256:<64 hex>")


def promote(
    skopeo: Skopeo, source: str, destination: str, version: str, digest: str | None
) -> PromotionReport:
    """Copy v<version> from source to destination by digest (or, digest None, verify a rollback)."""
    _check_inputs(source, destination, version, digest)
    tag = f"v{version}"
    source_digest = skopeo.digest_of(f"{source}:{tag}")
    destination_digest = skopeo.digest_of(f"{destination}:{tag}")

    if digest is None:
        if destination_digest is None:
            raise PromotionError(
                f"cannot roll back to {tag}: {destination}:{tag} does not exist; only releases "
                "already promoted to prod (and not yet expired by its lifecycle) can be rolled "
                "back to"
            )
        if source_digest is not None and source_digest != destination_digest:
            raise PromotionError(
                f"{destination}:{tag} is {destination_digest} but {source}:{tag} is "
                f"{source_digest}: the prod release was not promoted from nonprod; refusing"
            )
        return PromotionReport(source, destination, version, destination_digest, copied=False)

    if source_digest is None:
        raise PromotionError(
            f"{source}:{tag} does not exist: nonprod never published version {version}; "
            "publish it with `pulumi up --stack nonprod` first"
        )
    if source_digest != digest:
        raise PromotionError(
            f"{source}:{tag} is {source_digest}, not {digest} as the nonprod stack exported; "
            "refusing to promote an image that differs from the published one"
        )
    evidence = skopeo.digest_of(f"{source}:{evidence_tag(version)}")
    if evidence is None:
        raise PromotionError(
            f"{source}:{evidence_tag(version)} does not exist: {tag} was never verified (publish "
            "writes that tag only after its smoke test and ECR's image scan both passed); "
            "refusing to promote. Re-run publish, or fix what its smoke test or scan reported"
        )
    if evidence != digest:
        raise PromotionError(
            f"{source}:{evidence_tag(version)} is {evidence}, not {digest}: the verified image is "
            "not the one to promote; refusing"
        )
    if destination_digest == digest:
        return PromotionReport(source, destination, version, digest, copied=False)
    if destination_digest is not None:
        raise PromotionError(
            f"{destination}:{tag} already exists with digest {destination_digest}, not {digest}; "
            "release tags are immutable: publish a new version and promote that"
        )

    skopeo.copy(f"{source}@{digest}", f"{destination}:{tag}")
    landed = skopeo.digest_of(f"{destination}:{tag}")
    if landed != digest:
        raise PromotionError(
            f"after the copy {destination}:{tag} is {landed}, not {digest}: the digest was not "
            "preserved; the prod release is not the image nonprod tested"
        )
    return PromotionReport(source, destination, version, digest, copied=True)


@contextmanager
def registry_auth(repositories: Sequence[str]) -> Iterator[None]:
    """Give skopeo ECR credentials for this process only, via a private REGISTRY_AUTH_FILE."""
    hosts = sorted({repository.split("/", 1)[0] for repository in repositories})
    ecr_hosts = [match for match in map(ECR_HOST.fullmatch, hosts) if match is not None]
    if os.environ.get("REGISTRY_AUTH_FILE") or not ecr_hosts:
        yield
        return
    import boto3  # only ECR needs the AWS SDK
    from botocore.exceptions import BotoCoreError, ClientError

    auths = {}
    for match in ecr_hosts:
        host = match.group(0)
        registry_id, region = match.groups()
        try:
            client = boto3.client("ecr", region_name=region)
            data = client.get_authorization_token(registryIds=[registry_id])["authorizationData"]
        except (BotoCoreError, ClientError) as error:
            raise PromotionError(
                f"could not get ECR credentials for {host} ({error}); the AWS credentials need "
                "ecr:GetAuthorizationToken"
            ) from error
        auths[host] = {"auth": data[0]["authorizationToken"]}
    with tempfile.TemporaryDirectory(prefix="promote-auth-") as directory:
        path = Path(directory) / "auth.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"auths": auths}, handle)
        os.environ["REGISTRY_AUTH_FILE"] = str(path)
        try:
            yield
        finally:
            del os.environ["REGISTRY_AUTH_FILE"]


def parse_report(stdout: str) -> PromotionReport:
    """The report from the last non-empty line of this module's stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PromotionError("the promotion printed no report")
    try:
        return PromotionReport(**json.loads(lines[-1]))
    except (json.JSONDecodeError, TypeError) as error:
        raise PromotionError(f"the promotion report {lines[-1]!r} is not valid: {error}") from error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.promote", description="Promote a release to prod by digest."
    )
    parser.add_argument("--source", required=True, help="nonprod repository: host/path, no tag")
    parser.add_argument("--destination", required=True, help="prod repository: host/path, no tag")
    parser.add_argument("--version", required=True, help="release to promote, e.g. 0.1.0")
    parser.add_argument(
        "--digest", help="digest nonprod published (sha256:...); omit to roll back in prod"
    )
    parser.add_argument("--skopeo", default="skopeo", help="skopeo binary (default: from PATH)")
    args = parser.parse_args(argv)
    skopeo = Skopeo(args.skopeo)
    try:
        with registry_auth([args.source, args.destination]):
            report = promote(skopeo, args.source, args.destination, args.version, args.digest)
    except PromotionError as error:
        print(f"promotion failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
