"""Stack prod under a mocked engine: StackReference wiring, promotion by digest, protection."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.infra.conftest import (
    NONPROD_DIGEST,
    NONPROD_URL,
    PROD_CONFIG,
    PROD_REPOSITORY,
    PROD_URL,
    SOURCE_OUTPUTS,
    SOURCE_STACK,
    RunStack,
    StackRun,
)

COMMAND = "command:local:Command"
REPOSITORY = "aws:ecr/repository:Repository"


def promote_arguments(run: StackRun) -> dict[str, str]:
    arguments = shlex.split(run.one(COMMAND)["inputs"]["create"])
    assert arguments[:3] == [sys.executable, "-m", "infra.promote"], arguments[:3]
    return dict(zip(arguments[3::2], arguments[4::2], strict=True))


def test_reads_nonprod_through_a_stack_reference(prod_run: StackRun) -> None:
    # given / when the prod program ran
    reference = prod_run.one("pulumi:pulumi:StackReference")

    # then it referenced the configured nonprod stack
    assert reference["name"] == SOURCE_STACK
    assert reference["inputs"]["name"] == SOURCE_STACK


def test_promotes_nonprods_digest_with_the_promote_module(prod_run: StackRun) -> None:
    # given / when
    command = prod_run.one(COMMAND)["inputs"]
    arguments = promote_arguments(prod_run)

    # then the promotion copies nonprod's exported digest into the prod repository
    assert arguments == {
        "--source": NONPROD_URL,
        "--destination": PROD_URL,
        "--version": "0.1.0",
        "--digest": NONPROD_DIGEST,
    }
    assert command["triggers"][0] == NONPROD_DIGEST, "a new source digest re-runs the promotion"
    assert "delete" not in command, "forgetting a promotion must never delete a prod image"
    assert "environment" not in command, "no registry credentials are stored in the stack state"


def test_never_builds(prod_run: StackRun) -> None:
    # given / when / then
    assert not prod_run.of_type("docker-build:index:Image"), "prod must never build an image"
    assert not prod_run.of_type("aws:s3/bucket:Bucket")


def test_prod_repository_is_protected_and_retained(prod_run: StackRun) -> None:
    # given / when
    repository = prod_run.one(REPOSITORY)
    policy = json.loads(
        prod_run.one("aws:ecr/repositoryPolicy:RepositoryPolicy")["inputs"]["policy"]
    )
    lifecycle = json.loads(
        prod_run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]["policy"]
    )

    # then
    assert repository["inputs"]["name"] == PROD_REPOSITORY
    assert repository["protect"] is True, "`pulumi destroy` must not delete the prod repository"
    assert repository["retainOnDelete"] is True, "images stay in AWS if the resource is removed"
    assert repository["inputs"]["forceDelete"] is False
    assert repository["inputs"]["imageTagMutability"] == "IMMUTABLE"
    assert repository["inputs"]["imageScanningConfiguration"] == {"scanOnPush": True}
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Action"] == ["ecr:BatchDeleteImage"] and deny["Principal"] == "*"
    assert lifecycle["rules"][1]["selection"]["countNumber"] == 30, "prod keeps 30 days"


def test_outputs(prod_run: StackRun) -> None:
    # given / when / then
    assert prod_run.value("repositoryUrl") == PROD_URL
    assert prod_run.value("version") == "0.1.0"
    assert prod_run.value("imageDigest") == NONPROD_DIGEST, "prod holds nonprod's exact digest"
    assert prod_run.value("imageRef") == f"{PROD_URL}@{NONPROD_DIGEST}"
    assert prod_run.value("sourceImageRef") == f"{NONPROD_URL}@{NONPROD_DIGEST}"


def test_preview_runs_nothing(run_stack: RunStack) -> None:
    # given / when a preview of prod
    run = run_stack("prod", preview=True)

    # then the promotion is planned with nonprod's digest but not run: no digest is known yet
    assert run.error is None, run.error
    assert promote_arguments(run)["--digest"] == NONPROD_DIGEST
    assert "stdout" not in run.one(COMMAND)["outputs"]
    assert run.exports["imageDigest"]["known"] is False


def test_version_mismatch_is_refused(run_stack: RunStack) -> None:
    # given prod is configured for 0.2.0 but nonprod published 0.1.0
    config = {**PROD_CONFIG, "predict-buy:version": "0.2.0"}

    # when
    run = run_stack("prod", config=config)

    # then nothing is promoted and the message says what to do
    message = run.failure()
    assert run.error["type"] == "PromotionCheckError"
    assert "configured to promote version 0.2.0" in message and "published version 0.1.0" in message
    assert "pulumi config set predict-buy:version 0.1.0 --stack prod" in message
    assert not run.of_type(COMMAND), "no promotion may run on a version mismatch"


def test_digest_mismatch_after_copy_fails(run_stack: RunStack) -> None:
    # given a promotion whose report says another digest landed in prod
    landed = "sha256:" + "ef" * 32

    # when
    run = run_stack("prod", landed_digest=landed)

    # then the stack fails naming both digests
    message = run.failure()
    assert "digest mismatch" in message and landed in message and NONPROD_DIGEST in message
    assert run.error["type"] == "PromotionCheckError"


def test_garbled_promotion_report_fails(run_stack: RunStack) -> None:
    # given / when the promotion printed something that is not its report
    run = run_stack("prod", promotion_stdout="copied, probably")

    # then
    assert "is not valid" in run.failure(), run.failure()


def test_nonprod_without_an_image_is_refused(run_stack: RunStack) -> None:
    # given a nonprod stack that has not published (no digest yet)
    outputs = {**SOURCE_OUTPUTS, "imageDigest": ""}

    # when
    run = run_stack("prod", source_outputs=outputs)

    # then
    assert "run `pulumi up --stack nonprod`" in run.failure(), run.failure()
    assert not run.of_type(COMMAND)


def test_missing_nonprod_output_fails(run_stack: RunStack) -> None:
    # given nonprod outputs without a version
    outputs = {key: value for key, value in SOURCE_OUTPUTS.items() if key != "version"}

    # when
    run = run_stack("prod", source_outputs=outputs)

    # then the StackReference names the missing output
    assert "version" in run.failure(), run.failure()
    assert not run.of_type(COMMAND)


def test_rollback_verifies_a_release_prod_already_holds(run_stack: RunStack) -> None:
    # given nonprod is at 0.2.0 and prod rolls back to 0.1.0
    outputs = {**SOURCE_OUTPUTS, "version": "0.2.0", "imageDigest": "sha256:" + "02" * 32}
    config = {**PROD_CONFIG, "predict-buy:rollback": "true"}
    earlier = "sha256:" + "01" * 32

    # when
    run = run_stack("prod", config=config, source_outputs=outputs, rollback_digest=earlier)

    # then the promotion runs without a digest (nothing to copy) and prod exports 0.1.0's digest
    assert run.error is None, run.error
    assert "--digest" not in promote_arguments(run)
    assert promote_arguments(run)["--version"] == "0.1.0"
    assert run.value("imageDigest") == earlier
    assert run.value("imageRef") == f"{PROD_URL}@{earlier}"
    # and the source is what nonprod published (0.2.0), not what the promotion reported
    assert run.value("sourceImageRef") == f"{NONPROD_URL}@sha256:{'02' * 32}"


PROMOTE_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "promote.yml"
CHECK_STEP = "Check what landed in prod, and summarise"


def run_landing_check(
    tmp_path: Path, run: StackRun, requested: str, rollback: bool
) -> subprocess.CompletedProcess[str]:
    """promote.yml's check step, run by bash with the stack's outputs as the workflow sets them."""
    workflow = yaml.safe_load(PROMOTE_WORKFLOW.read_text())
    [step] = [s for s in workflow["jobs"]["promote"]["steps"] if s.get("name") == CHECK_STEP]
    summary = tmp_path / "summary.md"
    summary.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_STEP_SUMMARY": str(summary),
        "REQUESTED": requested,
        "ROLLBACK": "true" if rollback else "false",
        "VERSION": run.value("version"),
        "IMAGE_DIGEST": run.value("imageDigest"),
        "IMAGE_REF": run.value("imageRef"),
        "SOURCE_IMAGE_REF": run.value("sourceImageRef"),
    }
    assert set(step["env"]) == set(env) - {"PATH", "GITHUB_STEP_SUMMARY"}, step["env"]
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_workflow_check_passes_a_promotion_of_nonprods_digest(
    tmp_path: Path, prod_run: StackRun
) -> None:
    # given / when promote.yml checks what a normal promotion exported
    checked = run_landing_check(tmp_path, prod_run, "0.1.0", rollback=False)

    # then it passes and the summary names the source image
    assert checked.returncode == 0, checked.stdout + checked.stderr
    summary = (tmp_path / "summary.md").read_text()
    assert f"| copied from | `{NONPROD_URL}@{NONPROD_DIGEST}` |" in summary, summary


def test_a_prod_digest_other_than_nonprods_fails_the_workflow_check(
    tmp_path: Path, run_stack: RunStack
) -> None:
    # given a promotion whose reported digest differs from the digest nonprod exports
    outputs = {**SOURCE_OUTPUTS, "version": "0.2.0", "imageDigest": "sha256:" + "02" * 32}
    config = {**PROD_CONFIG, "predict-buy:rollback": "true"}
    other = "sha256:" + "01" * 32
    run = run_stack("prod", config=config, source_outputs=outputs, rollback_digest=other)
    assert run.error is None, run.error

    # when promote.yml's check runs on its outputs as if it were a plain promotion
    checked = run_landing_check(tmp_path, run, "0.1.0", rollback=False)

    # then the mismatch is detected: sourceImageRef carries nonprod's digest, not the promotion's
    assert checked.returncode == 1, "a prod digest nonprod never published passed the check"
    assert f"prod holds {other}, but nonprod published" in checked.stdout, checked.stdout
    assert (tmp_path / "summary.md").read_text() == "", "no success summary on a mismatch"

    # and as the rollback it is, it passes, saying it was one
    rolled_back = run_landing_check(tmp_path, run, "0.1.0", rollback=True)
    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    assert "rollback to a release prod already held" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"aws:region": "eu-west-2", "predict-buy:rollback": "true"},
            "rollback is true but predict-buy:version is not set",
        ),
        ({**PROD_CONFIG, "predict-buy:version": "latest"}, "'latest': not a SemVer version"),
        ({**PROD_CONFIG, "predict-buy:githubOidc": "true"}, "set it there instead"),
    ],
    ids=["rollback-without-version", "non-semver", "oidc-on-prod"],
)
def test_bad_config_fails_naming_the_key(
    run_stack: RunStack, config: dict[str, str], expected: str
) -> None:
    # given / when
    run = run_stack("prod", config=config)

    # then
    assert expected in run.failure(), run.failure()
    assert run.error["type"] == "StackConfigError"
    assert not run.of_type(COMMAND)


def test_without_a_version_prod_holds_the_repository_only(run_stack: RunStack) -> None:
    # given an empty account's first prod run: nothing published or promoted yet
    config = {"aws:region": "eu-west-2"}

    # when
    run = run_stack("prod", config=config, source_outputs={})

    # then the protected repository comes up, and nothing is read from nonprod or promoted
    assert run.error is None, run.error
    assert run.one(REPOSITORY)["protect"] is True
    assert not run.of_type(COMMAND) and not run.of_type("pulumi:pulumi:StackReference")
    assert sorted(run.exports) == ["repositoryUrl"]


def test_source_stack_follows_the_current_organization(run_stack: RunStack) -> None:
    # given prod without sourceStack, run in Pulumi Cloud organization my-org
    config = {"aws:region": "eu-west-2", "predict-buy:version": "0.1.0"}

    # when
    run = run_stack("prod", config=config, organization="my-org")

    # then it reads my-org's nonprod of this project (not the self-managed placeholder)
    assert run.error is None, run.error
    [reference] = run.of_type("pulumi:pulumi:StackReference")
    assert reference["inputs"]["name"] == "my-org/predict-buy/nonprod"


def test_unknown_stack_name_is_refused(run_stack: RunStack) -> None:
    # given / when a stack the program does not know
    run = run_stack("staging", config={"aws:region": "eu-west-2"})

    # then
    assert "stack 'staging' is not known" in run.failure()
