"""The tested image, pushed to a local registry, tagged by commit and promoted nonprod -> prod.

Every step is the project's own: the commit tag by infra.tag_image (CI's code path, from the
command line the nonprod stack builds), the promotion by infra.promote (skopeo, by digest, the
command line the prod stack runs). The proof: prod holds the digest that was pushed, whose config
is the image the container tests ran.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.components.promotion import check_report
from infra.components.service_image import tag_command
from infra.promote import Skopeo
from infra.release import read_git_sha
from infra.tag_image import main as tag_image_main
from tests.conftest import require_binary
from tests.image.conftest import Container, image_script
from tests.image.registry_ecr import MANIFEST_TYPES, RegistryAsEcr
from tests.infra.promotion_steps import NONPROD, PROD, record_evidence, run_promotion

pytestmark = [pytest.mark.image, pytest.mark.slow]

REGION = "eu-west-2"  # part of CI's command line; the local registry has no region


def push(tools: Any, image: str, destination: str, digest_file: Path) -> str:
    """buildah push to the registry (plain HTTP on loopback); the digest it landed under."""
    subprocess.run(
        [
            *tools.buildah("push", "--quiet", "--tls-verify=false"),
            *("--digestfile", str(digest_file)),
            image,
            f"docker://{destination}",
        ],
        capture_output=True,
        check=True,
        timeout=600,
    )
    return digest_file.read_text().strip()


def manifest(registry: str, repository: str, reference: str) -> dict[str, Any]:
    answer = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{reference}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
        timeout=30,
    )
    answer.raise_for_status()
    return dict(answer.json())


def tag_by_commit(
    registry: str, digest: str, commit: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """CI's commit-tag step: the nonprod stack's command line, run by infra.tag_image's main."""
    command = shlex.split(tag_command(sys.executable, NONPROD, REGION, digest, commit))
    assert command[1:3] == ["-m", "infra.tag_image"], command
    with closing(RegistryAsEcr(registry)) as client:
        status = tag_image_main(command[3:], client=client)
    out = capsys.readouterr().out
    assert status == 0, out
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_the_tested_image_reaches_prod_by_digest(
    tools: Any,
    built_image: Any,
    container: Container,
    tampered_image: str,
    registry: str,
    trained_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    skopeo = Skopeo(require_binary("skopeo"))
    version = image_script.version(trained_project)
    # given the image the container tests ran
    assert f"sha256:{container.inspect()['Image']}" == built_image.image_id, "tested image"

    # when it is pushed to nonprod as v<version>
    digest = push(tools, built_image.reference, f"{registry}/{NONPROD}:v{version}", tmp_path / "d")
    # then the pushed manifest is that image (its config digest is the image id)
    assert manifest(registry, NONPROD, digest)["config"]["digest"] == built_image.image_id
    assert skopeo.digest_of(f"{registry}/{NONPROD}:v{version}") == digest

    # when it is tagged by commit, as CI does after the push (and again, as a re-run does)
    commit = read_git_sha(trained_project, environ={})
    first_tag = tag_by_commit(registry, digest, commit, capsys)
    again_tag = tag_by_commit(registry, digest, commit, capsys)
    # then the commit names the same digest, and the re-run changed nothing
    assert first_tag == {"added": True, "digest": digest, "repository": NONPROD, "tag": commit}
    assert again_tag["added"] is False
    assert skopeo.digest_of(f"{registry}/{NONPROD}:{commit}") == digest

    # when it is promoted before publish recorded its evidence / then it is refused
    unverified = run_promotion(registry, version, digest)
    assert unverified.returncode == 1, unverified.stdout
    assert f"verified-{version}" in unverified.stderr, unverified.stderr
    assert skopeo.digest_of(f"{registry}/{PROD}:v{version}") is None, "nothing reached prod"

    # when the tested digest gets its evidence, as publish does after its smoke test
    evidence = record_evidence(registry, version, digest)
    assert evidence.returncode == 0, evidence.stderr
    assert skopeo.digest_of(f"{registry}/{NONPROD}:verified-{version}") == digest

    # when it is promoted to prod
    first = run_promotion(registry, version, digest)
    # then prod holds exactly the digest that was built and tested
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["copied"] is True
    assert check_report(first.stdout, version, f"{registry}/{PROD}", digest) == digest
    assert skopeo.digest_of(f"{registry}/{PROD}:v{version}") == digest
    assert manifest(registry, PROD, digest)["config"]["digest"] == built_image.image_id

    # when it is promoted again / then nothing is copied and prod is unchanged
    second = run_promotion(registry, version, digest)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.splitlines()[-1])["copied"] is False
    assert skopeo.digest_of(f"{registry}/{PROD}:v{version}") == digest

    # when an image that is not the tested one (the tampered build) is offered for promotion
    other = push(tools, tampered_image, f"{registry}/{NONPROD}:untested", tmp_path / "other")
    assert other != digest
    refused = run_promotion(registry, version, other)
    # then it is refused, naming both digests, and prod still holds the tested one
    assert refused.returncode == 1, refused.stdout
    assert f"is {digest}, not {other}" in refused.stderr, refused.stderr
    assert skopeo.digest_of(f"{registry}/{PROD}:v{version}") == digest
