"""dvc.yaml: every stage lists exactly the project modules its command imports among its deps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())


def imported_modules(module: str) -> set[str]:
    """Every ml.* module that running `python -m <module>` can import, lazily imported ones too."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = REPO_ROOT / (name.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ml"):
                names = [node.module]
                # `from ml import x` imports the module ml.x
                names += [f"{node.module}.{a.name}" for a in node.names]
                todo += [n for n in names if (REPO_ROOT / (n.replace(".", "/") + ".py")).is_file()]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("ml.")]
    return seen - {"ml"}


@pytest.mark.parametrize("stage", sorted(DVC_YAML["stages"]))
def test_every_stage_lists_the_modules_it_imports(stage: str):
    # given the stage's command `python -m ml.<module>`
    definition = DVC_YAML["stages"][stage]
    module = definition["cmd"].split("-m", 1)[1].split()[0]
    # when
    needed = {f"{m.replace('.', '/')}.py" for m in imported_modules(module)}
    listed = {d for d in definition["deps"] if d.startswith("ml/")}
    # then
    assert needed - listed == set(), f"{stage}: imports modules its deps do not list"
    assert listed - needed == set(), (
        f"{stage}: deps list modules it never imports (needless reruns)"
    )


def test_the_import_walk_finds_lazy_imports():
    # ml.data imports ml.s3 inside a function, only for an S3 source: a dep all the same.
    assert "ml.s3" in imported_modules("ml.data")
    assert Path(REPO_ROOT / "ml" / "s3.py").is_file()
