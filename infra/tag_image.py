"""Add the git-commit tag to an image already pushed to ECR, by digest, without rebuilding.

Stack nonprod runs this module (`python -m infra.tag_image ...`, from a pulumi-command Command)
after the image is pushed, so nothing commit-specific is part of the image build's inputs: the
same build inputs give the same image resource, and a re-run of a newer commit rebuilds nothing.
Steps:
  1. if the tag already names an image: the same digest is success (nothing to do); another digest
     fails (tags are immutable: the commit's tag already names other content);
  2. otherwise read the image's manifest by digest (ecr:BatchGetImage) and put it again under the
     tag (ecr:PutImage) with its media type, which adds the tag to the same digest.
The last line on stdout is a JSON report: repository, digest, tag, added. ECR is reached with the
ambient AWS credentials (boto3; AWS_ENDPOINT_URL points it at a test server).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
# ECR image tags: up to 128 characters, starting with a letter, digit or underscore.
TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# What the registry may hold under a digest: single images and multi-platform indexes.
MANIFEST_MEDIA_TYPES: Final = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
TAKEN_CODES: Final = ("ImageAlreadyExistsException", "ImageTagAlreadyExistsException")
NOT_FOUND_CODES: Final = ("ImageNotFoundException",)


class TagImageError(RuntimeError):
    """The tag could not be added; the message says which image, which tag and why."""


@dataclass(frozen=True)
class TagReport:
    repository: str
    digest: str
    tag: str
    added: bool


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def digest_of_tag(client: Any, repository: str, tag: str) -> str | None:
    """The digest `tag` names in `repository`, or None when no image has that tag."""
    from botocore.exceptions import ClientError

    try:
        answer = client.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as error:
        if _code(error) in NOT_FOUND_CODES:
            return None
        raise
    details = answer.get("imageDetails", [])
    return str(details[0]["imageDigest"]) if details else None


def _check_existing(repository: str, digest: str, tag: str, existing: str | None) -> bool:
    """True when the tag already names `digest`; raises when it names another image."""
    if existing is None:
        return False
    if existing == digest:
        return True
    raise TagImageError(
        f"{repository}:{tag} already names image {existing}, not {digest}: tags are immutable, "
        "so this commit's tag cannot move. The commit was published before with other content "
        "(e.g. another model); publish from a new commit"
    )


def tag_image(client: Any, repository: str, digest: str, tag: str) -> TagReport:
    """Make `tag` name the image `digest` in `repository`; idempotent."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not DIGEST.fullmatch(digest):
        raise TagImageError(f"digest {digest!r} is not sha256:<64 lowercase hex>")
    if not TAG.fullmatch(tag):
        raise TagImageError(
            f"tag {tag!r} is not an image tag: 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    try:
        if _check_existing(repository, digest, tag, digest_of_tag(client, repository, tag)):
            return TagReport(repository, digest, tag, added=False)
        answer = client.batch_get_image(
            repositoryName=repository,
            imageIds=[{"imageDigest": digest}],
            acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES),
        )
        images = answer.get("images", [])
        if not images:
            failures = answer.get("failures", [])
            reason = failures[0].get("failureReason", "not found") if failures else "not found"
            raise TagImageError(
                f"{repository}@{digest}: {reason}; the image must be pushed before it is tagged"
            )
        image = images[0]
        put: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": image["imageManifest"],
            "imageTag": tag,
        }
        media_type = image.get("imageManifestMediaType")
        if media_type:
            put["imageManifestMediaType"] = media_type
        try:
            client.put_image(**put)
        except ClientError as error:
            if _code(error) not in TAKEN_CODES:
                raise
            # Another run tagged it meanwhile (or ECR saw no change): decide by what it names now.
            existing = digest_of_tag(client, repository, tag)
            if not _check_existing(repository, digest, tag, existing):
                raise
            return TagReport(repository, digest, tag, added=False)
    except ClientError as error:
        raise TagImageError(
            f"could not tag {repository}@{digest} as {tag} ({_code(error)}: {error}); the AWS "
            "credentials need ecr:DescribeImages, ecr:BatchGetImage and ecr:PutImage on the "
            "repository"
        ) from error
    except BotoCoreError as error:
        raise TagImageError(
            f"could not tag {repository}@{digest} as {tag} ({error}); check the AWS credentials "
            "and the region"
        ) from error
    return TagReport(repository, digest, tag, added=True)


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.tag_image",
        description="Add a tag to an image already in ECR, by digest (no rebuild, no push).",
    )
    parser.add_argument("--repository", required=True, help="ECR repository name (no host)")
    parser.add_argument("--region", required=True, help="AWS region of the repository")
    parser.add_argument("--digest", required=True, help="the image's digest, sha256:...")
    parser.add_argument("--tag", required=True, help="the tag to add, e.g. the git commit")
    args = parser.parse_args(argv)
    try:
        if client is None:
            import boto3  # only when really tagging

            client = boto3.client("ecr", region_name=args.region)
        report = tag_image(client, args.repository, args.digest, args.tag)
    except TagImageError as error:
        print(f"tagging failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
