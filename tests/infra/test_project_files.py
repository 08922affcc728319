"""The committed Pulumi project, stack and policy-pack files: valid, consistent, secret-free."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import (
    ORIGINAL_BUCKET_NAME,
    NonprodSettings,
    ProdSettings,
    check_default_tags,
    read_settings,
)
from tests.conftest import REPO_ROOT
from tests.infra.test_settings import DictConfig


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def stack_config(stack: str) -> dict[str, Any]:
    return {str(k): v for k, v in load(f"Pulumi.{stack}.yaml")["config"].items()}


def test_project_runs_infra_with_the_project_environment() -> None:
    # given / when
    project = load("Pulumi.yaml")

    # then
    assert project["name"] == "predict-buy"
    assert project["main"] == "infra/"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }
    assert (REPO_ROOT / "infra" / "__main__.py").is_file()


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_stack_files_pass_the_programs_validation(stack: str) -> None:
    # given the committed stack config
    config = stack_config(stack)
    assert config.get("aws:region"), "each stack sets aws:region"

    # when the program reads it
    settings = read_settings(
        DictConfig(
            {k.split(":", 1)[1]: str(v) for k, v in config.items() if k.startswith("predict-buy:")}
        ),
        stack,
    )
    tags = check_default_tags(config.get("aws:defaultTags"))

    # then it is valid, has the retention and tags every resource with cost and owner
    assert tags["Stack"] == stack
    if stack == "nonprod":
        assert isinstance(settings, NonprodSettings)
        assert settings.image_retention_days == 15
        assert settings.bucket_name is None, (
            f"a fresh account can never own {ORIGINAL_BUCKET_NAME}: derive the name instead"
        )
        assert settings.publish is True
    else:
        assert isinstance(settings, ProdSettings)
        assert settings.image_retention_days == 30
        assert settings.source_stack is None, "derived from the organization the stack runs in"
        assert settings.version is None, "the promote workflow sets the version per run"


@pytest.mark.parametrize("name", ["Pulumi.yaml", "Pulumi.nonprod.yaml", "Pulumi.prod.yaml"])
def test_no_secrets_in_stack_files(name: str) -> None:
    # given / when
    text = (REPO_ROOT / name).read_text()

    # then no secure values, keys or tokens are committed
    assert "secure:" not in text
    assert not re.search(r"(AKIA|ASIA)[A-Z0-9]{16}", text), "an AWS access key id"
    assert "encryptionsalt" not in text


def test_policy_pack_only_builds_the_pack_from_the_rules() -> None:
    # given the pack's entry (not run: constructing a PolicyPack starts its server)
    source = Path(REPO_ROOT / "infra" / "policy" / "__main__.py").read_text()
    calls = [
        node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]

    # then it imports the tested rules and builds one pack from them
    assert "from infra.policy.rules import MANDATORY, policies" in source
    assert calls.count("PolicyPack") == 1 and "policies" in calls
    pack = yaml.safe_load((REPO_ROOT / "infra" / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert (
        REPO_ROOT / "infra" / "policy" / pack["runtime"]["options"]["virtualenv"]
    ).resolve() == (REPO_ROOT / ".venv").resolve()


def test_the_entry_imports_the_way_pulumi_runs_it() -> None:
    # given Pulumi's way: runpy.run_path(".") from infra/, without the repository on PYTHONPATH
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    code = (
        "import runpy; namespace = runpy.run_path('.', run_name='entry'); "
        "print(sorted(name for name in ('main', 'nonprod', 'prod') if name in namespace))"
    )

    # when (not as __main__, so the program itself does not start)
    answer = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT / "infra",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then the package imports resolve
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "['main', 'nonprod', 'prod']"
