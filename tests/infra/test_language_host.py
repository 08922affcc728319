"""The commands Pulumi's Python language host runs, run exactly so against the real .venv.

With `toolchain: pip` and `virtualenv` set (Pulumi.yaml for the program, PulumiPolicy.yaml for the
policy pack), the language host of the pinned SDK resolves the virtualenv against the project's
directory, activates it (VIRTUAL_ENV, PATH) and runs `<venv>/bin/python -m pip list -v --format
json` (and with `--not-required`) to find the installed Pulumi packages and their plugins; it stops
when that fails. Then it starts the program or the pack with the same interpreter. No Pulumi CLI
is needed for these commands, so they run here as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc

from infra.policy.rules import RESOURCE_RULES, STACK_RULES
from tests.conftest import REPO_ROOT

PROJECTS = {
    # project file -> the directory the language host runs in (the program's main, the pack)
    "Pulumi.yaml": REPO_ROOT / "infra",
    "infra/policy/PulumiPolicy.yaml": REPO_ROOT / "infra" / "policy",
}
PLUGIN_PACKAGES = ("pulumi_aws", "pulumi_command", "pulumi_docker_build")
START_DEADLINE_SECONDS = 60.0


def locked_version(package: str) -> str:
    match = re.search(
        rf"^{package}==(\S+)", (REPO_ROOT / "requirements" / "infra.txt").read_text(), re.M
    )
    assert match, f"{package} is not pinned in requirements/infra.txt"
    return match.group(1)


def virtualenv_of(project_file: str) -> Path:
    """runtime.options.virtualenv, resolved against the project file's directory."""
    runtime = yaml.safe_load((REPO_ROOT / project_file).read_text())["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["toolchain"] == "pip", "the commands below are pip's"
    return (REPO_ROOT / project_file).parent / runtime["options"]["virtualenv"]


def activated(virtualenv: Path) -> dict[str, str]:
    """The environment the language host gives its commands: the virtualenv activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    env["VIRTUAL_ENV"] = str(virtualenv)
    env["PATH"] = f"{virtualenv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("project_file", sorted(PROJECTS))
@pytest.mark.parametrize("transitive", [True, False], ids=["all", "not-required"])
def test_the_language_host_can_list_the_packages(project_file: str, transitive: bool) -> None:
    # given the virtualenv the project file names, as the language host resolves it
    virtualenv = virtualenv_of(project_file)
    python = virtualenv / "bin" / "python"
    assert python.is_file(), f"{python} is missing: run `make venv`"
    command = [str(python), "-m", "pip", "list", "-v", "--format", "json"]
    if not transitive:
        command.append("--not-required")

    # when it runs pip's package listing
    answer = subprocess.run(
        command,
        cwd=PROJECTS[project_file],
        env=activated(virtualenv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # then it succeeds with JSON the host parses (name, version, location)
    assert answer.returncode == 0, f"{' '.join(command)} failed: {answer.stderr}"
    packages = {p["name"].replace("-", "_").lower(): p for p in json.loads(answer.stdout)}
    assert all({"name", "version", "location"} <= set(p) for p in packages.values())
    if transitive:
        assert packages["pulumi"]["version"] == locked_version("pulumi")
        for name in PLUGIN_PACKAGES:
            # the host reads <location>/<module>/pulumi-plugin.json to learn the plugin version
            package = packages[name]
            plugin = json.loads(
                (Path(package["location"]) / name / "pulumi-plugin.json").read_text()
            )
            assert plugin["resource"] is True and plugin["version"] == package["version"]
            assert package["version"] == locked_version(name.replace("_", "-"))


def test_the_interpreter_is_the_projects_python() -> None:
    # given / when the host asks the interpreter its version (`python --version`)
    virtualenv = virtualenv_of("Pulumi.yaml")
    answer = subprocess.run(
        [str(virtualenv / "bin" / "python"), "--version"],
        env=activated(virtualenv),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    # then it is the Python 3.11 the locks are compiled for
    assert answer.returncode == 0 and answer.stdout.startswith("Python 3.11."), answer


def test_the_policy_pack_starts_and_serves_its_rules() -> None:
    # given the pack's interpreter and directory, without the repository on PYTHONPATH
    virtualenv = virtualenv_of("infra/policy/PulumiPolicy.yaml")
    process = subprocess.Popen(
        [
            str(virtualenv / "bin" / "python"),
            "-u",
            "-c",
            "import runpy; runpy.run_path('.', run_name='__main__')",
        ],
        cwd=PROJECTS["infra/policy/PulumiPolicy.yaml"],
        env=activated(virtualenv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # when it has printed the port of its analyzer (the way the CLI learns it)
        assert process.stdout is not None
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        line = process.stdout.readline().decode().strip()
        assert line.isdigit(), f"no port printed: {line!r} {process.stderr.read1().decode()}"
        assert time.monotonic() < deadline

        # then the analyzer answers on 127.0.0.1 with every rule of the pack, all mandatory
        with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
            grpc.channel_ready_future(channel).result(timeout=START_DEADLINE_SECONDS)
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(
                empty_pb2.Empty(), timeout=30
            )
        assert info.name == "predict-buy"
        assert {policy.name for policy in info.policies} == set(RESOURCE_RULES) | set(STACK_RULES)
    finally:
        process.terminate()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
