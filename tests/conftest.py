"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


# ../shared lives beside the team's clones and this repository's own CI; GitHub's runners set
# CI=true too but never have it, so there the real-data tests skip like on a user's clone.
SHARED_REQUIRED = IN_CI and os.environ.get("GITHUB_ACTIONS", "").lower() != "true"


def require(condition: bool, reason: str, *, strict: bool = IN_CI) -> None:
    """Skip when an optional prerequisite is missing; fail under CI=true, where it must exist."""
    if condition:
        return
    if strict:
        pytest.fail(f"{reason} (CI=true: required here, not skipped)")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Path of a system binary a test needs (apt packages installed by .ci/run)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    require(path is not None, f"{name} is not installed (apt-get install it, or run .ci/run)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the clone: real rows of the original dataset."""
    require(
        SHARED_DATA.is_dir(),
        f"{SHARED_DATA} is absent (only beside the team's clones)",
        strict=SHARED_REQUIRED,
    )
    return SHARED_DATA
