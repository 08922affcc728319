"""Project files the training side owns: bytecode, licence, ignores, help texts, light imports."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.conftest import REPO_ROOT

MAKEFILES = [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]


def test_bytecode_is_written_and_the_environment_is_compiled():
    # without bytecode every stage compiles scikit-learn, pandas and DVC from source again
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert not re.search(r"^export PYTHONDONTWRITEBYTECODE", makefile, re.MULTILINE)
    assert "unexport PYTHONDONTWRITEBYTECODE" in makefile
    assert "pip sync --require-hashes --compile-bytecode" in makefile


def test_the_licence_file_matches_pyproject():
    license_id = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (REPO_ROOT / "LICENSE").read_text()
    assert license_id == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text, text[:200]


def test_dvc_plots_output_is_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0, "dvc_plots/ (from `dvc plots show`) must be ignored"


def test_make_help_texts_are_complete_sentences():
    texts = [
        m.group(1)
        for path in MAKEFILES
        for m in re.finditer(r"^[a-z-]+:.*## (.*)$", path.read_text(), re.MULTILINE)
    ]
    assert len(texts) >= 8, texts
    bad = [t for t in texts if not (t[0].isupper() and t.endswith("."))]
    assert bad == [], f"help texts that are not sentences: {bad}"


def test_make_run_names_its_paths_without_importing_pandas_or_scikit_learn():
    code = "import sys, ml.run; print(sorted({'sklearn', 'pandas'} & set(sys.modules)))"
    shown = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "[]", shown.stdout
