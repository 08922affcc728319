"""A release of the service image: its version, tags, and the guard against re-using a version.

Version: pyproject.toml's [project].version, the project's one source, SemVer. Tags pushed with
the build (`Release.tags`, the build's only tags, nothing commit-specific):
  v<version>          the release (immutable; what prod promotes)
  inputs-<24 hex>     sha256 of the version and the build-context fingerprint, so a later run can
                      tell whether `v<version>` in the registry holds the same build inputs
Added after the push, by digest (infra.tag_image), so a new commit does not change the build:
  <git sha, 12 hex>   the commit(s) it was published from
Before building, `find_published` looks `v<version>` up in the repository: absent means build and
push; holding the same inputs means adopt that digest without building (from any checkout path);
anything else fails before pushing, asking for a version bump.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import semver

from infra.errors import ReleaseError
from infra.settings import parse_version

_HEX_SHA = re.compile(r"^[0-9a-f]{7,40}$")
SHA_LENGTH: Final = 12


def read_project_version(pyproject: Path) -> str:
    """[project].version from pyproject.toml, checked to be SemVer."""
    try:
        data = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        raise ReleaseError(f"{pyproject}: not found; the version is read from it") from None
    except tomllib.TOMLDecodeError as error:
        raise ReleaseError(f"{pyproject}: not valid TOML ({error})") from error
    version = data.get("project", {}).get("version")
    if not isinstance(version, str):
        raise ReleaseError(f"{pyproject}: [project].version is missing; set it, e.g. 0.1.0")
    return parse_version(version, f"{pyproject} [project].version", error=ReleaseError)


def read_git_sha(repo_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """The commit being published: $GITHUB_SHA in CI, else `git rev-parse` in `repo_dir`."""
    env = os.environ if environ is None else environ
    override = env.get("GITHUB_SHA", "").strip().lower()
    if override:
        if not _HEX_SHA.fullmatch(override):
            raise ReleaseError(
                f"GITHUB_SHA is {override!r}: expected a git commit sha (7-40 hex characters)"
            )
        return override[:SHA_LENGTH]
    try:
        result = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
            ["git", "rev-parse", f"--short={SHA_LENGTH}", "HEAD"],  # noqa: S607 (git from PATH)
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        raise ReleaseError(
            f"could not read the git commit in {repo_dir} ({error}); install git or set GITHUB_SHA"
        ) from error
    sha = result.stdout.strip().lower()
    if result.returncode != 0 or not _HEX_SHA.fullmatch(sha):
        raise ReleaseError(
            f"could not read the git commit in {repo_dir}: {result.stderr.strip() or sha!r}; "
            "publish from a git checkout or set GITHUB_SHA to the commit"
        )
    return sha[:SHA_LENGTH]


@dataclass(frozen=True)
class Release:
    """What one publication of the image is: version, commit, and build-input fingerprint."""

    version: str
    git_sha: str
    context_fingerprint: str

    @property
    def version_tag(self) -> str:
        return f"v{self.version}"

    @property
    def inputs_tag(self) -> str:
        bound = hashlib.sha256(f"{self.version}\0{self.context_fingerprint}".encode())
        return f"inputs-{bound.hexdigest()[:24]}"

    @property
    def tags(self) -> tuple[str, str]:
        """The tags pushed with the build: the same build inputs give the same tags."""
        return (self.version_tag, self.inputs_tag)

    @property
    def commit_tag(self) -> str:
        """Added to the pushed digest afterwards, never a build input."""
        return self.git_sha

    def next_patch(self) -> str:
        return str(semver.Version.parse(self.version).bump_patch())


@dataclass(frozen=True)
class PublishedImage:
    """An image already in the repository under the release's version tag."""

    digest: str
    tags: tuple[str, ...]


# (repository name, tag) -> the image holding that tag, or None when there is none.
ImageLookup = Callable[[str, str], PublishedImage | None]


class EcrImageLookup:
    """Look a tag up with ECR DescribeImages (read-only: ecr:DescribeImages)."""

    def __init__(self, region: str, client: Any = None) -> None:
        if client is None:
            import boto3  # the AWS SDK is imported only when a lookup is really made

            client = boto3.client("ecr", region_name=region)
        self.client = client

    def __call__(self, repository: str, tag: str) -> PublishedImage | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.describe_images(
                repositoryName=repository, imageIds=[{"imageTag": tag}]
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return None
            raise ReleaseError(
                f"could not look up {repository}:{tag} in ECR ({code}: {error}); the check needs "
                "AWS credentials allowed ecr:DescribeImages on the repository"
            ) from error
        except BotoCoreError as error:
            raise ReleaseError(
                f"could not look up {repository}:{tag} in ECR ({error}); check AWS credentials "
                "and the region (aws:region)"
            ) from error
        details = answer.get("imageDetails", [])
        if not details:
            return None
        return PublishedImage(
            digest=details[0]["imageDigest"], tags=tuple(details[0].get("imageTags", []))
        )


def already_published(repository: str, release: Release, lookup: ImageLookup) -> bool:
    """Whether `v<version>` is already published with these exact build inputs (a re-run).

    False when the version is new; raises ReleaseError, before anything is pushed, when the
    version already holds other content.
    """
    return find_published(repository, release, lookup) is not None


def find_published(repository: str, release: Release, lookup: ImageLookup) -> PublishedImage | None:
    """The image `v<version>` already holds with these exact build inputs, else None.

    A hit means there is nothing to build: the stack adopts that digest. Raises ReleaseError,
    before anything is pushed, when the version already holds other content.
    """
    published = lookup(repository, release.version_tag)
    if published is None:
        return None
    if release.inputs_tag in published.tags:
        return published
    raise ReleaseError(
        f"{repository}:{release.version_tag} is already published (digest {published.digest}, "
        f"tags {', '.join(sorted(published.tags))}) from other build inputs than this checkout "
        f"(this build would be {release.inputs_tag}). Release tags are immutable: bump "
        f"[project].version in pyproject.toml (e.g. to {release.next_patch()}) and publish again"
    )
