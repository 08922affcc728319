"""The GitHub Actions workflows keep the rules a security reviewer checks, beyond the linters.

actionlint and zizmor run on every `make test` (mk/workflows.mk); these tests pin what they do not:
pins agree with each other and with the project's action table, deploys are serialised per
stack, cloud credentials reach only trusted refs, every repository variable is checked and
documented, and the promote workflow's version check accepts exactly the release versions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.yml"))
ACTIONS_TABLE = REPO_ROOT.parent / "shared" / "ACTIONS.md"
DELIVERY_DOC = REPO_ROOT / "docs" / "delivery.md"
VENV_BIN = REPO_ROOT / ".venv" / "bin"

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+# (?P<version>v\d+\.\d+\.\d+)$")
TABLE_ROW = re.compile(
    r"^\|\s*(?P<action>[\w.-]+/[\w.-]+)\s*\|\s*(?P<tag>v[\d.]+)\s*\|\s*(?P<sha>[0-9a-f]{40})\s*\|"
)
VARIABLE = re.compile(r"\bvars\.([A-Z][A-Z0-9_]*)")
# Optional variables: the workflows fall back to a default when they are empty (none now: every
# Pulumi token is a team token named by its own variable).
OPTIONAL_VARIABLES: set[str] = set()
SETTINGS_STEP = "Check the repository settings"
EXPECTED_WORKFLOWS = {
    "checks.yml",
    "preview.yml",
    "train.yml",
    "publish.yml",
    "promote.yml",
    "drift.yml",
}
# The checks branch protection requires (docs/delivery.md, step 5), by their reported names.
REQUIRED_CHECKS = {
    ("checks.yml", "lint"): "lint (ruff)",
    ("checks.yml", "delivery-lint"): "lint (Dockerfile, workflows)",
    ("checks.yml", "test"): "test (make test)",
    ("preview.yml", "preview-nonprod"): "pulumi preview (nonprod)",
    ("preview.yml", "preview-prod"): "pulumi preview (prod)",
}


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    assert isinstance(workflow, dict), f"{path.name}: not a YAML mapping"
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    return load(path)["jobs"]


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def action_of(step: dict[str, Any]) -> str | None:
    uses = step.get("uses")
    return uses.split("@", 1)[0] if uses else None


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, step)
        for path in WORKFLOW_FILES
        for job_id, job in jobs(path).items()
        for step in steps(job)
    ]


def test_the_six_workflows_exist() -> None:
    # given / when
    names = {path.name for path in WORKFLOW_FILES}
    # then
    assert names == EXPECTED_WORKFLOWS, f"workflows found: {sorted(names)}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_nothing_is_granted_by_default_and_every_job_declares_its_permissions(path: Path) -> None:
    # given
    workflow = load(path)
    # then
    assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for job_id, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict) and permissions, (
            f"{path.name}: job {job_id} must list its permissions"
        )
        assert "write-all" not in str(permissions), f"{path.name}: job {job_id} asks for write-all"


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment() -> None:
    # given
    pins: dict[str, set[tuple[str, str]]] = {}
    # when
    for path in WORKFLOW_FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = USES_LINE.match(line)
            if not match:
                continue
            where = f"{path.name}:{number}"
            pinned = PINNED.match(match["ref"])
            assert pinned, f"{where}: {match['ref']} is not pinned to a 40-hex commit SHA"
            comment = VERSION_COMMENT.match(match["comment"])
            assert comment, f"{where}: expected a `# vX.Y.Z` comment after the SHA"
            pins.setdefault(pinned["action"], set()).add((pinned["sha"], comment["version"]))
    # then
    assert pins, "no `uses:` lines found"
    for action, versions in pins.items():
        assert len(versions) == 1, f"{action} is pinned to different commits: {sorted(versions)}"


def test_pins_match_the_projects_action_table() -> None:
    # given: the table of release commits the team resolved (beside the clone; absent on GitHub)
    if not ACTIONS_TABLE.is_file():
        pytest.skip(f"{ACTIONS_TABLE} is absent (only beside the team's clones)")
    table = {
        row["action"]: (row["sha"], row["tag"])
        for row in map(TABLE_ROW.match, ACTIONS_TABLE.read_text().splitlines())
        if row
    }
    # when / then
    for name, job_id, step in all_steps():
        action = action_of(step)
        if action is None or action.startswith("./"):
            continue
        assert action in table, f"{name} job {job_id}: {action} is not in {ACTIONS_TABLE.name}"
        sha = step["uses"].split("@", 1)[1]
        assert sha == table[action][0], f"{name}: {action}@{sha} is not {table[action]}"


def test_checkouts_never_persist_the_token() -> None:
    checkouts = [
        (name, job_id, step)
        for name, job_id, step in all_steps()
        if action_of(step) == "actions/checkout"
    ]
    assert checkouts, "no checkout steps found"
    for name, job_id, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, (
            f"{name} job {job_id}: checkout must set persist-credentials: false"
        )


def test_no_expression_is_expanded_inside_a_run_script() -> None:
    # Values reach scripts through env: only; the shell never sees ${{ }} text substituted in.
    for name, job_id, step in all_steps():
        script = step.get("run", "")
        assert "${{" not in script, (
            f"{name} job {job_id} step {step.get('name')!r}: ${{{{ }}}} in run:"
        )


def pulumi_steps(command: str) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in WORKFLOW_FILES:
        for job_id, job in jobs(path).items():
            for step in steps(job):
                if (
                    action_of(step) == "pulumi/actions"
                    and step.get("with", {}).get("command") == command
                ):
                    found.append((path.name, job_id, job, step))
    return found


def test_deploys_of_one_stack_are_serialised_and_never_cancelled() -> None:
    # given
    deploys = pulumi_steps("up")
    stacks = set()
    # then
    assert {name for name, *_ in deploys} == {"publish.yml", "promote.yml"}
    for name, job_id, job, step in deploys:
        stack = step["with"]["stack-name"].rsplit("/", 1)[1]
        stacks.add(stack)
        concurrency = job.get("concurrency")
        assert concurrency == {"group": f"pulumi-{stack}", "cancel-in-progress": False}, (
            f"{name} job {job_id}: expected concurrency group pulumi-{stack}, never cancelled"
        )
        assert step["with"].get("policyPacks") == "infra/policy", f"{name}: policy pack missing"
    assert stacks == {"nonprod", "prod"}


def test_previews_cover_both_stacks_with_the_policy_pack_and_comment_on_the_pr() -> None:
    # given
    previews = pulumi_steps("preview")
    # then one fixed job per stack, each refreshing, with the policy pack and a PR comment
    assert {(name, job_id) for name, job_id, *_ in previews} == {
        ("preview.yml", "preview-nonprod"),
        ("preview.yml", "preview-prod"),
    }
    for _name, job_id, job, step in previews:
        stack = job_id.removeprefix("preview-")
        assert step["with"]["stack-name"] == f"${{{{ vars.PULUMI_ORG }}}}/{stack}"
        assert step["with"]["refresh"] is True, "the read-only role refreshes in every preview"
        assert step["with"]["policyPacks"] == "infra/policy"
        assert step["with"]["comment-on-pr"] is True
        assert not job["concurrency"]["group"].startswith("pulumi-"), (
            "a preview sharing a deploy's concurrency group could cancel a queued deploy"
        )
    assert "pull_request_target" not in load(WORKFLOWS_DIR / "preview.yml")["on"]


def test_required_checks_have_fixed_names_even_when_skipped() -> None:
    # given the jobs branch protection requires
    for (workflow, job_id), name in REQUIRED_CHECKS.items():
        job = jobs(WORKFLOWS_DIR / workflow)[job_id]

        # then each reports under a fixed name: a skipped matrix job would report its
        # unexpanded name, and a pull request from a fork could never merge
        assert job["name"] == name, f"{workflow} {job_id}: named {job['name']!r}"
        assert "strategy" not in job, f"{workflow} {job_id}: a required check must not be a matrix"
    doc = DELIVERY_DOC.read_text()
    for name in REQUIRED_CHECKS.values():
        assert f"`{name}`" in doc, f"docs/delivery.md does not list the required check {name}"


def locked_pulumi_version() -> str:
    match = re.search(
        r"^pulumi==(\S+)", (REPO_ROOT / "requirements" / "infra.txt").read_text(), re.M
    )
    assert match, "pulumi is not pinned in requirements/infra.txt"
    return match.group(1)


def test_the_pulumi_cli_is_pinned_to_the_sdk_in_the_lock() -> None:
    # given every use of pulumi/actions (it installs the CLI)
    uses = [
        (name, job_id, step)
        for name, job_id, step in all_steps()
        if action_of(step) == "pulumi/actions"
    ]
    # then each installs exactly the CLI release of the locked SDK
    assert uses
    for name, job_id, step in uses:
        version = str(step.get("with", {}).get("pulumi-version", ""))
        assert version == locked_pulumi_version(), (
            f"{name} job {job_id} step {step.get('name')!r}: pulumi-version {version!r}, the "
            f"locked SDK is {locked_pulumi_version()}"
        )


# Which Pulumi team each workflow's OIDC subject maps to (docs/delivery.md, step 1).
PULUMI_TEAMS = {
    "preview.yml": "PULUMI_PREVIEW_TEAM",
    "drift.yml": "PULUMI_PREVIEW_TEAM",
    "publish.yml": "PULUMI_NONPROD_TEAM",
    "promote.yml": "PULUMI_PROD_TEAM",
}


def test_pulumi_tokens_are_team_tokens_scoped_per_workflow() -> None:
    # given every Pulumi Cloud token request
    requests = [
        (name, step["with"])
        for name, _job_id, step in all_steps()
        if action_of(step) == "pulumi/auth-actions"
    ]
    # then none is an organization token: each asks for its own team's
    assert {name for name, _ in requests} == set(PULUMI_TEAMS)
    for name, inputs in requests:
        assert inputs["requested-token-type"] == "urn:pulumi:token-type:access_token:team", name
        assert inputs["scope"] == f"team:${{{{ vars.{PULUMI_TEAMS[name]} }}}}", name
    for path in WORKFLOW_FILES:
        assert "access_token:organization" not in path.read_text(), path.name
        assert "PULUMI_ACCESS_TOKEN" not in path.read_text(), f"{path.name}: a long-lived token"


def test_cloud_credentials_reach_only_trusted_refs() -> None:
    # given: the role each job assumes
    roles = {
        (name, job_id): step["with"]["role-to-assume"]
        for name, job_id, step in all_steps()
        if action_of(step) == "aws-actions/configure-aws-credentials"
    }
    publish = jobs(WORKFLOWS_DIR / "publish.yml")["publish"]
    promote = jobs(WORKFLOWS_DIR / "promote.yml")["promote"]
    drift = jobs(WORKFLOWS_DIR / "drift.yml")["drift"]
    # then
    assert roles == {
        ("preview.yml", "preview-nonprod"): "${{ vars.AWS_PREVIEW_ROLE_ARN }}",
        ("preview.yml", "preview-prod"): "${{ vars.AWS_PREVIEW_ROLE_ARN }}",
        ("drift.yml", "drift"): "${{ vars.AWS_PREVIEW_ROLE_ARN }}",
        ("train.yml", "train"): (
            "${{ github.ref == 'refs/heads/main' && vars.AWS_DVC_WRITE_ROLE_ARN "
            "|| vars.AWS_TRAIN_ROLE_ARN }}"
        ),
        ("publish.yml", "publish"): "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
        ("promote.yml", "promote"): "${{ vars.AWS_PROMOTE_ROLE_ARN }}",
    }, f"unexpected roles: {roles}; publish (nonprod) and promote (prod) use separate roles"
    assert publish["if"] == "github.ref == 'refs/heads/main'"
    assert promote["if"] == "github.ref == 'refs/heads/main'"
    assert promote["environment"] == "production", "promote needs the reviewed environment"
    assert drift["environment"] == "drift", "the read-only role trusts the drift environment"
    for job_id in ("preview-nonprod", "preview-prod"):
        preview = jobs(WORKFLOWS_DIR / "preview.yml")[job_id]
        assert preview["if"] == (
            "github.event.pull_request.head.repo.full_name == github.repository"
        )
    train = steps(jobs(WORKFLOWS_DIR / "train.yml")["train"])
    writes = [
        s for s in train if "dvc push" in s.get("run", "") or "create-pull" in s.get("uses", "")
    ]
    assert writes and all(s.get("if") == "github.ref == 'refs/heads/main'" for s in writes), (
        "only main writes the DVC remote and opens the model's pull request"
    )
    for name, _job_id, step in all_steps():
        env = step.get("env", {})
        assert not any(key.startswith("AWS_SECRET") for key in env), f"{name}: long-lived key"


def test_publish_records_evidence_only_after_the_smoke_test_and_pushes_with_a_login() -> None:
    # given the publish job's steps in order
    order = [s.get("name") for s in steps(jobs(WORKFLOWS_DIR / "publish.yml")["publish"])]
    evidence = step_named(
        "publish.yml", "publish", "Check ECR's scan and record the release evidence"
    )

    # then the ECR login comes before the build (no registry credentials in the state), the
    # smoke test before the evidence, and the evidence step runs the project's module
    assert order.index("Log in to ECR") < order.index("pulumi up (nonprod)")
    assert order.index("Smoke-test the pushed image") < order.index(evidence["name"])
    assert evidence["run"].split()[:3] == [".venv/bin/python", "-m", "infra.release_evidence"]
    assert "--no-scan" not in evidence["run"], "a release is verified only with ECR's scan"
    assert "if" not in evidence, "the evidence step runs only when every step before it passed"
    for _name, _job, step in all_steps():
        assert "trivy" not in str(step.get("uses", "")).lower(), "no third-party scanner action"


def test_the_drift_check_refreshes_both_stacks_and_expects_no_changes() -> None:
    # given the scheduled drift workflow
    workflow = load(WORKFLOWS_DIR / "drift.yml")
    job = workflow["jobs"]["drift"]
    [check] = [s for s in steps(job) if "pulumi preview" in s.get("run", "")]

    # then it runs on a schedule for both stacks, refreshing, and fails on any change
    assert workflow["on"]["schedule"], "the drift check is scheduled"
    assert job["strategy"]["matrix"]["stack"] == ["nonprod", "prod"]
    assert "--refresh" in check["run"] and "--expect-no-changes" in check["run"]
    assert "--policy-pack infra/policy" in check["run"]


def test_dependabot_updates_actions_and_python_locks() -> None:
    # given
    config = yaml.safe_load((REPO_ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    # then
    assert config["version"] == 2
    assert set(ecosystems) == {"github-actions", "pip"}
    assert "/requirements" in ecosystems["pip"]["directories"]


def test_codeowners_cover_delivery_and_infrastructure() -> None:
    # given
    lines = [
        line.split()
        for line in (REPO_ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    owned = {parts[0]: parts[1:] for parts in lines}
    # then
    for path in ("/.github/", "/infra/", "/Pulumi.prod.yaml"):
        assert owned.get(path), f"CODEOWNERS has no owner for {path}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_required_variable_is_checked_first_and_documented(path: Path) -> None:
    # given
    doc = DELIVERY_DOC.read_text() if DELIVERY_DOC.is_file() else ""
    for job_id, job in jobs(path).items():
        used = set(VARIABLE.findall(yaml.safe_dump(job))) - OPTIONAL_VARIABLES
        if not used:
            continue
        # when
        first = steps(job)[0]
        # then
        assert first.get("name") == SETTINGS_STEP, f"{path.name} job {job_id}: check settings first"
        checked = set(VARIABLE.findall(yaml.safe_dump(first.get("env", {}))))
        assert used == checked, (
            f"{path.name} job {job_id}: uses {sorted(used)}, checks {sorted(checked)}"
        )
        for variable in used | OPTIONAL_VARIABLES:
            assert f"`{variable}`" in doc, f"{variable} is not documented in {DELIVERY_DOC.name}"


def test_checks_installs_the_same_system_packages_as_ci() -> None:
    # given
    ci_script = (REPO_ROOT / ".ci" / "run").read_text()
    ci_packages = re.search(r"^apt_packages=\(([^)]*)\)", ci_script, re.MULTILINE)
    test_job = jobs(WORKFLOWS_DIR / "checks.yml")["test"]
    # when
    installs = [s["run"] for s in steps(test_job) if "apt-get install" in s.get("run", "")]
    # then
    assert ci_packages, ".ci/run no longer lists apt_packages=(...)"
    assert len(installs) == 1, "expected one apt-get install step in checks.yml's test job"
    installed = re.search(r"--no-install-recommends ([^\n]+)", installs[0])
    assert installed
    assert sorted(installed[1].split()) == sorted(ci_packages[1].split())


def version_check_script() -> str:
    promote = jobs(WORKFLOWS_DIR / "promote.yml")["promote"]
    (step,) = [s for s in steps(promote) if s.get("id") == "version"]
    assert step["env"] == {"VERSION_INPUT": "${{ inputs.version }}"}
    return step["run"]


def run_version_check(tmp_path: Path, version_input: str) -> tuple[int, str, str]:
    output = tmp_path / "github_output"
    output.write_text("")
    completed = subprocess.run(
        ["bash", "-e", "-c", version_check_script()],
        env={
            "PATH": os.environ["PATH"],
            "VERSION_INPUT": version_input,
            "GITHUB_OUTPUT": str(output),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.returncode, output.read_text(), completed.stdout


@pytest.mark.parametrize(
    ("version_input", "expected"),
    [
        ("1.4.0", "1.4.0"),
        ("v0.1.0", "0.1.0"),
        ("10.20.30", "10.20.30"),
        ("1.0.0-rc.1", "1.0.0-rc.1"),
        ("2.0.0-alpha.beta-1.0", "2.0.0-alpha.beta-1.0"),
    ],
)
def test_promote_accepts_release_versions(
    tmp_path: Path, version_input: str, expected: str
) -> None:
    # when
    status, output, _ = run_version_check(tmp_path, version_input)
    # then
    assert status == 0, f"{version_input!r} was refused"
    assert output == f"version={expected}\n"


@pytest.mark.parametrize(
    "version_input",
    [
        "",
        "1.4",
        "01.2.3",
        "1.2.3-01",
        "1.2.3-rc.01",
        "1.2.3+build.5",
        "1.2.3 ",
        " 1.2.3",
        "1.2.3\n",
        "vv1.2.3",
        "1.2.3; curl example.invalid",
        "$(id)",
        "1.2.3\nversion=6.6.6",
        "x\n::warning::a workflow command smuggled in",
    ],
)
def test_promote_refuses_anything_else(tmp_path: Path, version_input: str) -> None:
    # when
    status, output, stdout = run_version_check(tmp_path, version_input)
    # then
    assert status == 1, f"{version_input!r} was accepted"
    assert output == "", "nothing may reach the step output"
    assert stdout.startswith("::error::version:"), "the refusal must say what is wrong"
    assert stdout.count("\n") == 1, f"one line, the input quoted, no other command: {stdout!r}"


def lint(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = VENV_BIN / tool
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `make venv`")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)


INJECTABLE_WORKFLOW = """\
name: bad
on:
  pull_request:
permissions: write-all
jobs:
  greet:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo $UNQUOTED
"""


def test_the_workflow_linters_catch_what_this_repository_forbids(tmp_path: Path) -> None:
    # given: an injectable title, an unpinned action, a checkout that keeps its token and
    # an unquoted variable
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(INJECTABLE_WORKFLOW)
    # when
    zizmor = lint("zizmor", "--offline", "--no-config", "--color", "never", str(workflows))
    shellcheck = str(VENV_BIN / "shellcheck")
    actionlint = lint("actionlint", "-shellcheck", shellcheck, str(workflows / "bad.yml"))
    # then
    assert zizmor.returncode != 0, "zizmor passed a workflow it must refuse"
    for audit in ("template-injection", "unpinned-uses", "artipacked"):
        assert audit in zizmor.stdout, f"zizmor did not report {audit}:\n{zizmor.stdout}"
    assert actionlint.returncode != 0, "actionlint passed a workflow it must refuse"
    assert "github.event.pull_request.title" in actionlint.stdout
    assert "SC2086" in actionlint.stdout, "shellcheck did not check the run: scripts"


def step_named(workflow: str, job_id: str, name: str) -> dict[str, Any]:
    (step,) = [s for s in steps(jobs(WORKFLOWS_DIR / workflow)[job_id]) if s.get("name") == name]
    return step


def test_the_train_job_points_data_and_dvc_at_the_bucket(tmp_path: Path) -> None:
    # given: a clone's params.yaml and DVC config, and the train job's step as written
    step = step_named(
        "train.yml", "train", "Point the pipeline at new_ML_data/ and DVC at the S3 remote"
    )
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / ".dvc").mkdir()
    shutil.copy(REPO_ROOT / ".dvc" / "config", tmp_path / ".dvc" / "config")
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    env = {**os.environ, "DATA_BUCKET": "example-bucket", "PYTHONPATH": str(REPO_ROOT)}
    # when
    completed = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # then
    assert completed.returncode == 0, completed.stderr
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["data"]["source"] == "s3://example-bucket/new_ML_data/"
    local_config = (tmp_path / ".dvc" / "config.local").read_text()
    assert "url = s3://example-bucket/DVC_Artefacts" in local_config, local_config


def test_every_zizmor_suppression_says_why() -> None:
    # An inline `# zizmor: ignore[audit]` must be followed by its reason on the same line.
    for path in WORKFLOW_FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "zizmor: ignore" not in line:
                continue
            reason = line.split("]", 1)[1].strip(" -:") if "]" in line else ""
            assert len(reason) >= 10, f"{path.name}:{number}: a zizmor suppression without a reason"


S3_REMOTE_LINE = '.venv/bin/python -m ml.cli use-s3-remote --bucket "$DATA_BUCKET"'
S3_REMOTE_WORKFLOWS = ("publish.yml", "preview.yml", "train.yml")


@pytest.mark.parametrize("workflow", S3_REMOTE_WORKFLOWS)
def test_the_dvc_remote_is_set_with_the_projects_command(tmp_path: Path, workflow: str) -> None:
    # given the workflow's step that points DVC at the bucket
    [step] = [
        s
        for name, _job, s in all_steps()
        if name == workflow and "use-s3-remote" in s.get("run", "")
    ]
    text = (WORKFLOWS_DIR / workflow).read_text()
    assert "dvc remote modify" not in text, f"{workflow}: use `ml.cli use-s3-remote`, not dvc"
    assert step["env"]["DATA_BUCKET"] == "${{ vars.DATA_BUCKET }}"
    [line] = [line.strip() for line in step["run"].splitlines() if "use-s3-remote" in line]
    assert line == S3_REMOTE_LINE, f"{workflow}: {line!r}"
    (tmp_path / ".dvc").mkdir()
    shutil.copy(REPO_ROOT / ".dvc" / "config", tmp_path / ".dvc" / "config")
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    env = {**os.environ, "DATA_BUCKET": "example-bucket", "PYTHONPATH": str(REPO_ROOT)}

    # when that exact line runs in a clone
    completed = subprocess.run(
        ["bash", "-e", "-c", line],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    # then the clone's local DVC config sends `-r s3` to the bucket's DVC prefix
    assert completed.returncode == 0, completed.stderr
    local_config = (tmp_path / ".dvc" / "config.local").read_text()
    assert "url = s3://example-bucket/DVC_Artefacts" in local_config, local_config


def test_publish_scans_every_model_file_the_image_ships() -> None:
    # given the model files the Dockerfile copies into the image, and the publish scan step
    dockerfile = (REPO_ROOT / "service" / "Dockerfile").read_text()
    shipped = set(re.findall(r"\bmodels/model\.\w+", dockerfile)) - {"models/model.json"}
    publish = jobs(WORKFLOWS_DIR / "publish.yml")["publish"]
    [scan] = [s for s in steps(publish) if "scan_model.py" in s.get("run", "")]
    scanned = set(scan["run"].split()[2:])

    # then every artefact is scanned: what ships, and the pipeline the model was trained as
    assert shipped, "service/Dockerfile no longer copies a model file"
    assert scanned >= shipped | {"models/model.skops"}, f"scanned {sorted(scanned)}"
    assert scanned == {"models/model.skops", "models/model.npz"}
    order = [s.get("name") for s in steps(publish)]
    assert order.index(scan["name"]) < order.index("pulumi up (nonprod)"), "scan before shipping"


def github_path_pattern(pattern: str) -> re.Pattern[str]:
    """A `paths:` filter pattern as GitHub matches it: ** any depth, * within one segment."""
    regex = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
        for part in re.split(r"(\*\*|\*)", pattern)
    )
    return re.compile(f"^{regex}$")


def test_publish_runs_when_anything_in_the_image_build_changes() -> None:
    # given the publish trigger's paths and what the image build reads
    paths = load(WORKFLOWS_DIR / "publish.yml")["on"]["push"]["paths"]
    patterns = [github_path_pattern(p) for p in paths]
    dockerfile = (REPO_ROOT / "service" / "Dockerfile").read_text()
    sources = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in [w for w in line.split()[1:] if not w.startswith("--")][:-1]
    ]
    # models/ is DVC's: a new model changes dvc.lock, which is in the filter
    build_inputs = [".dockerignore", "service/Dockerfile", "dvc.lock"] + [
        source.rstrip("/") + ("/app.py" if source.endswith("/") else "")
        for source in sources
        if not source.startswith("models/")
    ]

    # then a change to any of them publishes
    assert sources, "no COPY lines found in service/Dockerfile"
    missed = [path for path in build_inputs if not any(p.match(path) for p in patterns)]
    assert not missed, f"publish.yml's paths: miss {missed}; a change there would not publish"


FAKE_PULUMI = """#!/usr/bin/env bash
# Answers `pulumi stack output version --stack S` from $OUTPUTS/<S>; logs `pulumi config set`.
if [[ "$1 $2" == "stack output" ]]; then
    file="$OUTPUTS/${5//\\//_}"
    [[ -f "$file" ]] || { echo "no output" >&2; exit 255; }
    cat "$file"
elif [[ "$1 $2" == "config set" ]]; then
    echo "$3=$4 $6" >> "$OUTPUTS/config.log"
fi
"""


@pytest.mark.parametrize(
    ("prod", "nonprod", "expected"),
    [
        (None, "0.2.0", []),
        ("0.2.0", "0.2.0", ["version=0.2.0 o/prod", "rollback=false o/prod"]),
        ("0.1.0", "0.2.0", ["version=0.1.0 o/prod", "rollback=true o/prod"]),
    ],
    ids=["nothing-promoted", "prod-runs-nonprods-release", "prod-behind-nonprod"],
)
def test_prod_previews_pin_the_version_prod_runs(
    tmp_path: Path, prod: str | None, nonprod: str, expected: list[str]
) -> None:
    # given a Pulumi CLI stand-in that knows both stacks' version outputs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    if prod is not None:
        (outputs / "o_prod").write_text(prod)
    (outputs / "o_nonprod").write_text(nonprod)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUTPUTS": str(outputs)}

    # when the step the preview and drift jobs run for prod runs
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "pin_prod_version.sh"), "o/prod", "o/nonprod"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then prod's config is set to what it runs (a rollback when nonprod is ahead), or untouched
    assert done.returncode == 0, done.stderr
    log = outputs / "config.log"
    assert (log.read_text().splitlines() if log.exists() else []) == expected
