"""Promotion for real: Debian's docker-registry on 127.0.0.1, a tiny OCI image, skopeo.

The test runs the exact command the prod stack's Command runs (`promote_command`), so the code
path is the stack's. It proves the digest is preserved, that a re-run copies nothing, and that a
wrong digest or version fails with a clear message.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from infra.promote import PromotionError, Skopeo, promote, tls_verify
from infra.release_evidence import EvidenceError, write_evidence
from tests.conftest import REPO_ROOT, require_binary
from tests.infra.promotion_steps import NONPROD, PROD, record_evidence, run_promotion

pytestmark = pytest.mark.e2e


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_oci_image(layout: Path, tag: str, content: bytes) -> str:
    """An OCI image layout with one gzip layer holding one file; returns the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("app/model.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer_tar = archive.getvalue()
    layer = _blob(layout, gzip.compress(layer_tar, mtime=0))
    config = _blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"],
                },
            }
        ).encode(),
    )
    manifest = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode(),
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return str(manifest["digest"])


def publish(skopeo: str, layout: Path, registry: str, tag: str) -> None:
    subprocess.run(
        [
            skopeo,
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{registry}/{NONPROD}:{tag}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def unverified(tmp_path: Path, registry: str) -> tuple[str, str]:
    """v0.1.0 in nonprod without evidence; returns (registry, digest)."""
    skopeo = require_binary("skopeo")
    digest = write_oci_image(tmp_path / "layout", "v0.1.0", b"model 0.1.0\n")
    publish(skopeo, tmp_path / "layout", registry, "v0.1.0")
    return registry, digest


@pytest.fixture
def published(unverified: tuple[str, str]) -> tuple[str, str]:
    """v0.1.0 in nonprod with its verified-0.1.0 evidence; returns (registry, digest)."""
    registry, digest = unverified
    answer = record_evidence(registry, "0.1.0", digest)
    assert answer.returncode == 0, answer.stderr
    return registry, digest


def test_promotion_refuses_a_release_without_evidence(unverified: tuple[str, str]) -> None:
    # given v0.1.0 in nonprod that publish never verified (smoke test or scan failed)
    registry, digest = unverified

    # when the prod stack's promotion runs
    result = run_promotion(registry, "0.1.0", digest)

    # then it refuses, and prod stays empty
    assert result.returncode == 1
    assert "verified-0.1.0 does not exist" in result.stderr, result.stderr
    assert Skopeo(require_binary("skopeo")).digest_of(f"{registry}/{PROD}:v0.1.0") is None


def test_evidence_for_other_content_is_refused(tmp_path: Path, unverified: tuple[str, str]) -> None:
    # given verified-0.1.0 names another image than v0.1.0 (pushed by hand)
    registry, digest = unverified
    skopeo = require_binary("skopeo")
    other = write_oci_image(tmp_path / "other", "verified-0.1.0", b"another model\n")
    publish(skopeo, tmp_path / "other", registry, "verified-0.1.0")

    # when promoting, and when publish tries to record its evidence
    result = run_promotion(registry, "0.1.0", digest)
    again = record_evidence(registry, "0.1.0", digest)

    # then both refuse, naming the other digest
    assert result.returncode == 1
    assert f"verified-0.1.0 is {other}, not {digest}" in result.stderr, result.stderr
    assert again.returncode == 1 and f"already names {other}" in again.stderr, again.stderr


def test_evidence_is_written_once_and_only_for_the_release_digest(
    unverified: tuple[str, str],
) -> None:
    # given v0.1.0 in nonprod
    registry, digest = unverified
    skopeo = Skopeo(require_binary("skopeo"))

    # when the evidence is written twice, then for a digest v0.1.0 does not name
    first = write_evidence(skopeo, f"{registry}/{NONPROD}", "0.1.0", digest)
    second = write_evidence(skopeo, f"{registry}/{NONPROD}", "0.1.0", digest)
    with pytest.raises(EvidenceError, match="evidence is written only for the digest"):
        write_evidence(skopeo, f"{registry}/{NONPROD}", "0.2.0", digest)

    # then it landed on the release's digest once; a re-run adds nothing
    assert (first, second) == (True, False)
    assert skopeo.digest_of(f"{registry}/{NONPROD}:verified-0.1.0") == digest


def test_no_scan_is_refused_for_a_remote_registry() -> None:
    # given / when publish's evidence step is asked to skip the scan for ECR
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.release_evidence",
            "--repository",
            "123456789012.dkr.ecr.eu-west-2.amazonaws.com/ce7-grp-1/nonprod/predict_buy_app",
            "--version",
            "0.1.0",
            "--digest",
            "sha256:" + "a" * 64,
            "--no-scan",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then it refuses: only ECR's scan verifies a release
    assert answer.returncode == 1
    assert "--no-scan is for registries on this machine only" in answer.stderr, answer.stderr


def test_promotion_preserves_the_digest_and_is_idempotent(published: tuple[str, str]) -> None:
    # given v0.1.0 in nonprod, nothing in prod
    registry, digest = published
    skopeo = Skopeo(require_binary("skopeo"))
    assert skopeo.digest_of(f"{registry}/{NONPROD}:v0.1.0") == digest, "nonprod holds our image"
    assert skopeo.digest_of(f"{registry}/{PROD}:v0.1.0") is None

    # when the prod stack's promotion runs
    first = run_promotion(registry, "0.1.0", digest)

    # then prod holds the same digest, and the report says so
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout.strip().splitlines()[-1])
    assert report == {
        "copied": True,
        "destination": f"{registry}/{PROD}",
        "digest": digest,
        "source": f"{registry}/{NONPROD}",
        "version": "0.1.0",
    }
    assert skopeo.digest_of(f"{registry}/{PROD}:v0.1.0") == digest

    # when it runs again
    second = run_promotion(registry, "0.1.0", digest)

    # then nothing is copied and prod is unchanged
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.strip().splitlines()[-1])["copied"] is False
    assert skopeo.digest_of(f"{registry}/{PROD}:v0.1.0") == digest

    # and a rollback to this release verifies it without copying
    rollback = run_promotion(registry, "0.1.0", None)
    assert rollback.returncode == 0, rollback.stderr
    assert json.loads(rollback.stdout.strip().splitlines()[-1])["digest"] == digest


def test_wrong_digest_or_version_fails_clearly(published: tuple[str, str]) -> None:
    # given v0.1.0 in nonprod
    registry, digest = published
    wrong = "sha256:" + "0" * 64

    # when promoting with a digest nonprod does not hold
    mismatch = run_promotion(registry, "0.1.0", wrong)

    # then it fails naming both digests, and prod stays empty
    assert mismatch.returncode == 1
    assert f"is {digest}, not {wrong} as the nonprod stack exported" in mismatch.stderr
    assert Skopeo(require_binary("skopeo")).digest_of(f"{registry}/{PROD}:v0.1.0") is None

    # when promoting a version nonprod never published
    missing = run_promotion(registry, "0.2.0", digest)
    assert missing.returncode == 1
    assert "nonprod never published version 0.2.0" in missing.stderr, missing.stderr

    # when rolling back to a version prod never held
    never = run_promotion(registry, "0.1.0", None)
    assert never.returncode == 1
    assert "cannot roll back to v0.1.0" in never.stderr, never.stderr

    # when the arguments are malformed
    malformed = run_promotion(registry, "v0.1.0", digest)
    assert malformed.returncode == 1
    assert "not SemVer" in malformed.stderr


def test_an_existing_prod_tag_with_other_content_is_refused(
    tmp_path: Path, published: tuple[str, str]
) -> None:
    # given prod already holds v0.1.0 with other content (pushed by hand)
    registry, digest = published
    skopeo = require_binary("skopeo")
    other = write_oci_image(tmp_path / "other", "v0.1.0", b"another model\n")
    subprocess.run(
        [
            skopeo,
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{tmp_path / 'other'}:v0.1.0",
            f"docker://{registry}/{PROD}:v0.1.0",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )

    # when
    result = run_promotion(registry, "0.1.0", digest)

    # then tags are treated as immutable
    assert result.returncode == 1
    assert f"already exists with digest {other}" in result.stderr, result.stderr


class LyingSkopeo(Skopeo):
    """A registry that reports another digest after the copy: digests not preserved."""

    def __init__(self) -> None:
        super().__init__("skopeo")
        self.copied = False

    def digest_of(self, reference: str) -> str | None:
        if reference.startswith("src"):  # the release and its verified-<version> evidence
            return "sha256:" + "a" * 64
        return "sha256:" + "b" * 64 if self.copied else None

    def copy(self, source: str, destination: str) -> None:
        self.copied = True


def test_a_copy_that_changes_the_digest_is_detected() -> None:
    # given a copy after which the destination digest differs
    # when / then
    with pytest.raises(PromotionError, match="digest was not preserved"):
        promote(LyingSkopeo(), "src.example/a/b", "dst.example/a/b", "0.1.0", "sha256:" + "a" * 64)


def test_tls_is_skipped_only_for_loopback_registries() -> None:
    assert tls_verify("127.0.0.1:5000/a/b:v1") == "false"
    assert tls_verify("localhost:5000/a/b") == "false"
    assert tls_verify("123456789012.dkr.ecr.eu-west-2.amazonaws.com/a/b") == "true"
