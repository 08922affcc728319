"""Release version, git sha, tags and the guard against re-using a version (against moto's ECR)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import semver
from botocore.exceptions import ClientError

from infra.errors import ReleaseError
from infra.release import (
    EcrImageLookup,
    PublishedImage,
    Release,
    already_published,
    read_git_sha,
    read_project_version,
)
from tests.conftest import REPO_ROOT, require

RELEASE = Release(version="0.1.0", git_sha="0123456789ab", context_fingerprint="f" * 64)


def test_the_repository_version_is_pyprojects_version() -> None:
    # given the project's own pyproject.toml, read as plain TOML
    expected = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]

    # when
    version = read_project_version(REPO_ROOT / "pyproject.toml")

    # then the release is exactly [project].version, and it is SemVer
    assert version == expected, f"read {version!r}, pyproject.toml says {expected!r}"
    assert semver.Version.is_valid(version), version


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[project]\nversion = "1.0"\n', "'1.0': not a SemVer version"),
        ('[project]\nname = "x"\n', "[project].version is missing"),
        ("[project\n", "not valid TOML"),
    ],
)
def test_bad_project_versions(tmp_path: Path, text: str, expected: str) -> None:
    # given
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text)

    # when / then
    with pytest.raises(ReleaseError, match=r"pyproject\.toml") as caught:
        read_project_version(pyproject)
    assert expected in str(caught.value)


def test_git_sha_from_github_sha_or_git(tmp_path: Path) -> None:
    # given CI's GITHUB_SHA
    assert read_git_sha(tmp_path, {"GITHUB_SHA": "ABCDEF0123456789abcdef0123456789abcdef01"}) == (
        "abcdef012345"
    )
    # given this checkout
    require((REPO_ROOT / ".git").exists(), f"{REPO_ROOT} is not a git checkout")
    expected = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert read_git_sha(REPO_ROOT, {}) == expected
    # given a directory that is not a checkout
    with pytest.raises(ReleaseError, match="set GITHUB_SHA"):
        read_git_sha(tmp_path, {})
    with pytest.raises(ReleaseError, match="expected a git commit sha"):
        read_git_sha(tmp_path, {"GITHUB_SHA": "main"})


def test_tags_bind_the_inputs_to_the_version() -> None:
    # given the same inputs under two versions
    other_version = Release("0.1.1", RELEASE.git_sha, RELEASE.context_fingerprint)
    other_inputs = Release("0.1.0", RELEASE.git_sha, "e" * 64)

    # then each (version, inputs) pair has its own inputs tag, and the commit is not a build tag
    assert RELEASE.tags == ("v0.1.0", RELEASE.inputs_tag)
    assert RELEASE.commit_tag == "0123456789ab"
    assert Release("0.1.0", "fedcba987654", RELEASE.context_fingerprint).tags == RELEASE.tags, (
        "the build's tags must not depend on the commit"
    )
    assert RELEASE.inputs_tag.startswith("inputs-") and len(RELEASE.inputs_tag) == 31
    assert len({RELEASE.inputs_tag, other_version.inputs_tag, other_inputs.inputs_tag}) == 3


def test_guard_cases() -> None:
    # given a lookup that knows one published image
    published = {
        "repo:v0.1.0": PublishedImage("sha256:" + "1" * 64, ("v0.1.0", RELEASE.inputs_tag))
    }

    def lookup(repository: str, tag: str) -> PublishedImage | None:
        return published.get(f"{repository}:{tag}")

    # then a new version is free, a re-run is recognised, other content is refused
    assert already_published("other", RELEASE, lookup) is False
    assert already_published("repo", RELEASE, lookup) is True
    changed = Release("0.1.0", RELEASE.git_sha, "e" * 64)
    with pytest.raises(ReleaseError, match=r"bump \[project\].version .* to 0.1.1"):
        already_published("repo", changed, lookup)


def test_ecr_lookup_over_http(ecr: Any) -> None:
    # given a repository with one image tagged v0.1.0 and its inputs tag
    ecr.create_repository(repositoryName="lookup/nonprod/predict_buy_app")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {},
            "layers": [],
        }
    )
    for tag in ("v0.1.0", RELEASE.inputs_tag):
        ecr.put_image(
            repositoryName="lookup/nonprod/predict_buy_app", imageManifest=manifest, imageTag=tag
        )
    lookup = EcrImageLookup("eu-west-2", client=ecr)

    # when / then
    found = lookup("lookup/nonprod/predict_buy_app", "v0.1.0")
    assert found is not None and set(found.tags) == {"v0.1.0", RELEASE.inputs_tag}
    assert found.digest.startswith("sha256:")
    assert lookup("lookup/nonprod/predict_buy_app", "v9.9.9") is None
    assert lookup("missing/nonprod/predict_buy_app", "v0.1.0") is None, "no repository yet"
    assert already_published("lookup/nonprod/predict_buy_app", RELEASE, lookup) is True


class RefusingEcr:
    """An ECR client whose credentials may not describe images."""

    def describe_images(self, **_: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
            "DescribeImages",
        )


def test_ecr_lookup_errors_name_the_permission() -> None:
    # given credentials without ecr:DescribeImages
    lookup = EcrImageLookup("eu-west-2", client=RefusingEcr())

    # when / then the error says what the check needs
    with pytest.raises(ReleaseError, match="ecr:DescribeImages") as caught:
        lookup("ce7-grp-1/nonprod/predict_buy_app", "v0.1.0")
    assert "AccessDeniedException" in str(caught.value)
