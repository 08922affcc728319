"""Paths as resource inputs: relative to where Pulumi runs, so no checkout path enters the state."""

from __future__ import annotations

import os
from pathlib import Path


def relative_location(path: Path, cwd: Path | None = None) -> str:
    """`path` relative to the working directory Pulumi runs the program and providers in.

    Pulumi starts the program and its provider plugins in the project's `main` directory
    (infra/), so `..` is the checkout whatever its absolute path.
    """
    return os.path.relpath(path, cwd or Path.cwd())


def portable_python(python: str, command_dir: Path) -> str:
    """The interpreter relative to `command_dir` when it lives there (the checkout's .venv)."""
    interpreter = Path(python)
    if interpreter.is_absolute() and interpreter.is_relative_to(command_dir):
        return os.path.relpath(interpreter, command_dir)
    return python
