"""The model check before a build, .dockerignore semantics and the build-context fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra.build_context import (
    DockerIgnore,
    context_files,
    context_fingerprint,
    verify_model_artefacts,
)
from infra.errors import ModelArtefactError
from tests.infra.conftest import write_build_context


def test_a_complete_model_passes(build_context: Path) -> None:
    # given / when
    verified = verify_model_artefacts(build_context)

    # then the metadata and both files were checked
    assert [p.name for p in verified] == ["model.json", "model.skops", "model.npz"]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda models: (models / "model.json").unlink(), "model.json"),
        (lambda models: (models / "model.npz").unlink(), "model.npz"),
        (lambda models: (models / "model.skops").write_bytes(b"tampered"), "model.skops"),
        (lambda models: (models / "model.json").write_text("{not json"), "model.json"),
    ],
    ids=["no-metadata", "no-compiled", "corrupt-pipeline", "corrupt-metadata"],
)
def test_a_missing_or_corrupt_model_names_the_file_and_dvc_pull(
    build_context: Path, damage: Callable[[Path], object], named: str
) -> None:
    # given a damaged model directory
    damage(build_context / "models")

    # when / then
    with pytest.raises(ModelArtefactError) as caught:
        verify_model_artefacts(build_context)
    message = str(caught.value)
    assert named in message and "`dvc pull train evaluate`" in message, message


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        ([".git"], ".git/config", True),
        (["**/__pycache__"], "ml/sub/__pycache__/x.pyc", True),
        (["*.md"], "README.md", True),
        (["*.md"], "docs/guide.md", False),
        (["**/*.md"], "docs/guide.md", True),
        (["data", "!data/keep.csv"], "data/keep.csv", False),
        (["data", "!data/keep.csv"], "data/other.csv", True),
        (["*", "!service", "!models"], "service/app.py", False),
        (["*", "!service", "!models"], "ml/train.py", True),
        (["/tests"], "tests/test_x.py", True),
        (["m?dels"], "models/model.npz", True),
    ],
)
def test_dockerignore_matches_like_buildkit(patterns: list[str], path: str, ignored: bool) -> None:
    # given / when / then
    assert DockerIgnore(patterns).ignored(path) is ignored, (patterns, path)


def test_context_files_respect_dockerignore_and_dockerfile_specific_ignore(
    build_context: Path,
) -> None:
    # given a context with ignored folders
    (build_context / "data").mkdir()
    (build_context / "data" / "train.csv").write_text("a,b\n")
    (build_context / "ml" / "__pycache__").mkdir(parents=True)
    (build_context / "ml" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    dockerfile = build_context / "service" / "Dockerfile"

    # when
    files = context_files(build_context, dockerfile)

    # then
    assert "data/train.csv" not in files and "ml/__pycache__/x.pyc" not in files
    assert {"models/model.npz", "service/Dockerfile", "pyproject.toml"} <= set(files)

    # and a Dockerfile-specific ignore file wins over the context's
    (build_context / "service" / "Dockerfile.dockerignore").write_text("*\n!models\n")
    assert set(context_files(build_context, dockerfile)) == {
        "models/model.json",
        "models/model.npz",
        "models/model.skops",
    }


def test_fingerprint_follows_the_content(tmp_path: Path) -> None:
    # given two identical contexts in different places
    first = write_build_context(tmp_path / "a")
    second = write_build_context(tmp_path / "b")
    dockerfile = Path("service") / "Dockerfile"

    def fingerprint(context: Path) -> str:
        return context_fingerprint(context, context / dockerfile)

    # then they have one fingerprint; an ignored change keeps it; a real change moves it
    assert fingerprint(first) == fingerprint(second), "the location must not matter"
    (second / "data").mkdir()
    (second / "data" / "big.csv").write_text("ignored\n")
    assert fingerprint(first) == fingerprint(second), "ignored files are not build inputs"
    (second / "service" / "app.py").write_text("print('changed')\n")
    assert fingerprint(first) != fingerprint(second), "a source change is a new build input"
    (first / "service" / "Dockerfile").write_text("FROM scratch\n")
    assert fingerprint(first) != fingerprint(write_build_context(tmp_path / "c"))
