"""infra.tag_image against moto's ECR over HTTP: the git-sha tag is added by digest, idempotently.

The nonprod stack adds the commit's tag after the push so that nothing commit-specific is a build
input; these tests prove the tag lands on the same digest, that a re-run is a no-op, and that a
tag already naming other content fails clearly (tags are immutable).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from infra.tag_image import TagImageError, digest_of_tag, tag_image
from tests.conftest import REPO_ROOT

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest(layer: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE,
            "config": {"digest": "sha256:" + "c" * 64, "size": 10, "mediaType": MEDIA_TYPE},
            "layers": [{"digest": "sha256:" + layer * 64, "size": 20, "mediaType": MEDIA_TYPE}],
        }
    )


def push(ecr: Any, repository: str, tag: str, layer: str) -> str:
    """Put an image as the build's push does; returns its digest."""
    answer = ecr.put_image(repositoryName=repository, imageManifest=manifest(layer), imageTag=tag)
    return str(answer["image"]["imageId"]["imageDigest"])


@pytest.fixture
def released(ecr: Any, request: pytest.FixtureRequest) -> tuple[str, str]:
    """An IMMUTABLE repository holding v0.1.0; returns (repository, digest)."""
    unique = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    repository = f"tag-{unique}/nonprod/app"
    ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    return repository, push(ecr, repository, "v0.1.0", "a")


def tags_of(ecr: Any, repository: str, digest: str) -> set[str]:
    [detail] = ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])[
        "imageDetails"
    ]
    return set(detail["imageTags"])


def test_adds_the_commit_tag_to_the_pushed_digest_and_is_idempotent(
    ecr: Any, released: tuple[str, str]
) -> None:
    # given v0.1.0 pushed, without the commit's tag
    repository, digest = released

    # when the commit's tag is added by digest
    report = tag_image(ecr, repository, digest, "0123456789ab")

    # then the same image (same digest) carries both tags
    assert report.added is True
    assert tags_of(ecr, repository, digest) == {"v0.1.0", "0123456789ab"}
    assert digest_of_tag(ecr, repository, "0123456789ab") == digest

    # when it runs again (a re-run of the same commit)
    again = tag_image(ecr, repository, digest, "0123456789ab")

    # then nothing changes and it succeeds
    assert again.added is False
    assert tags_of(ecr, repository, digest) == {"v0.1.0", "0123456789ab"}

    # and a later commit with the same build inputs adds its tag to the same digest
    assert tag_image(ecr, repository, digest, "fedcba987654").added is True
    assert tags_of(ecr, repository, digest) == {"v0.1.0", "0123456789ab", "fedcba987654"}


def test_a_tag_on_another_digest_is_a_clear_error(ecr: Any, released: tuple[str, str]) -> None:
    # given the commit's tag already names another image
    repository, digest = released
    other = push(ecr, repository, "0123456789ab", "b")
    assert other != digest

    # when / then tagging v0.1.0's digest with it fails naming both digests
    with pytest.raises(TagImageError, match="tags are immutable") as caught:
        tag_image(ecr, repository, digest, "0123456789ab")
    assert other in str(caught.value) and digest in str(caught.value)
    assert tags_of(ecr, repository, digest) == {"v0.1.0"}, "the pushed image is unchanged"


def test_unknown_digest_and_bad_arguments_fail(ecr: Any, released: tuple[str, str]) -> None:
    repository, _ = released
    # a digest that was never pushed
    with pytest.raises(TagImageError, match="must be pushed before it is tagged"):
        tag_image(ecr, repository, "sha256:" + "0" * 64, "0123456789ab")
    # malformed input
    with pytest.raises(TagImageError, match="not sha256"):
        tag_image(ecr, repository, "latest", "0123456789ab")
    with pytest.raises(TagImageError, match="is not an image tag"):
        tag_image(ecr, repository, "sha256:" + "0" * 64, "-bad tag")
    # a repository that does not exist
    with pytest.raises(TagImageError, match="RepositoryNotFoundException"):
        tag_image(ecr, "missing/nonprod/app", "sha256:" + "0" * 64, "0123456789ab")


def run_module(moto_ecr: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m infra.tag_image` as the stack's Command runs it, with ECR at moto."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") or key == "AWS_EC2_METADATA_DISABLED"
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": moto_ecr,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "infra.tag_image", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_prints_a_report_and_fails_with_exit_1(
    ecr: Any, moto_ecr: str, released: tuple[str, str]
) -> None:
    # given v0.1.0 pushed
    repository, digest = released
    common = ["--repository", repository, "--region", "eu-west-2", "--digest", digest]

    # when the stack's command runs
    done = run_module(moto_ecr, *common, "--tag", "0123456789ab")

    # then it reports the tag on the digest as JSON on its last line
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "added": True,
        "digest": digest,
        "repository": repository,
        "tag": "0123456789ab",
    }
    assert "0123456789ab" in tags_of(ecr, repository, digest)

    # when the tag names other content
    other = push(ecr, repository, "fedcba987654", "d")
    refused = run_module(moto_ecr, *common, "--tag", "fedcba987654")

    # then it exits 1 with the reason on stderr
    assert refused.returncode == 1
    assert refused.stderr.startswith("tagging failed:") and other in refused.stderr, refused.stderr
