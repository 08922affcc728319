"""The local base image: Debian bookworm from this machine's apt sources, keyed by its inputs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.image.conftest import configured_base, image_script

pytestmark = [pytest.mark.image]


def test_the_base_tag_changes_with_every_input(tmp_path: Path) -> None:
    # given an apt source file naming bookworm
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    found = image_script.apt_source_files("bookworm", [tmp_path])
    assert found == [sources], "the .sources file naming the suite is used"
    first = image_script.base_reference(found)
    # when the machine's sources change (another mirror)
    sources.write_text("Types: deb\nURIs: http://other.example/debian\nSuites: bookworm\n")
    second = image_script.base_reference(found)
    # then the cached base is not reused: the tag names its inputs
    assert first != second, "a base built from other sources must get another tag"
    assert re.fullmatch(r"localhost/predict-buy-base:bookworm-py311-[0-9a-f]{16}", first), first


def test_no_bookworm_source_is_a_clear_error(tmp_path: Path) -> None:
    # given sources for another release only
    (tmp_path / "other.list").write_text("deb http://mirror.example/debian trixie main\n")
    # when / then the error says what is missing and what to do instead
    with pytest.raises(image_script.ImageError, match=r"no apt source for Debian bookworm.*"):
        image_script.apt_source_files("bookworm", [tmp_path])


def test_no_package_host_is_written_into_the_repository() -> None:
    # given every file that builds the base or the image
    files = [
        REPO_ROOT / "scripts" / "container_image.py",
        REPO_ROOT / "service" / "Dockerfile",
        REPO_ROOT / "mk" / "image.mk",
    ]
    # then none names a package host: the sources are read from the machine when building
    for path in files:
        text = path.read_text()
        assert not re.search(r"[a-z+]+://(?!127\.0\.0\.1)", text), f"{path} holds an address"


def test_a_missing_model_is_refused_before_building(tmp_path: Path) -> None:
    # given a context without models/ / when building / then the error says how to get one
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(image_script.ImageError, match=r"lacks models/model.npz.*make run"):
        image_script.check_context(tmp_path)


def test_the_base_is_cached_by_its_tag(tools: Any, base_image: str) -> None:
    if configured_base():
        pytest.skip(f"PYTHON_IMAGE={configured_base()}: this run builds on it, not a local base")
    # given the base built once / when it is asked for again / then it comes back at once
    done = subprocess.run(
        [*tools.buildah("inspect", "--type", "image", base_image)], capture_output=True, check=False
    )
    assert done.returncode == 0, "the base is in local storage under its tag"
    assert image_script.build_base(tools) == base_image, "same inputs, same tag, no rebuild"
