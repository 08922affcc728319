"""The GitHub roles against what the stacks really do: the read-only role can refresh both."""

from __future__ import annotations

import json
import re

from infra.components.github_oidc import REFRESH_READS
from infra.policy.rules import allows
from tests.infra.conftest import StackRun

READ_ONLY = re.compile(r"^[a-z0-9-]+:(Get|List|Describe|BatchGet|BatchCheck)[A-Za-z*]*$")
NO_CLOUD_READS = ("command:local:Command", "pulumi:pulumi:StackReference")


def permissions(run: StackRun, purpose: str) -> dict:
    [policy] = [
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r["inputs"].get("name") == f"ce7-grp-1-github-{purpose}-permissions"
    ]
    return json.loads(policy["inputs"]["policy"])


def test_every_resource_type_of_both_stacks_has_its_refresh_reads(
    nonprod_oidc_run: StackRun, nonprod_run: StackRun, prod_run: StackRun
) -> None:
    # given every provider resource type both stacks create (image built, roles on)
    types = {
        r["type"]
        for run in (nonprod_oidc_run, nonprod_run, prod_run)
        for r in run.resources
        if r["custom"] and r["type"] not in NO_CLOUD_READS
    }

    # then each has its list of reads: a new type without one fails here, not in a drift check
    missing = sorted(types - set(REFRESH_READS))
    assert not missing, f"add the calls `pulumi refresh` makes for {missing} to REFRESH_READS"


def test_the_preview_role_can_refresh_and_only_reads(nonprod_oidc_run: StackRun) -> None:
    # given the preview role (pull requests and the drift check)
    policy = permissions(nonprod_oidc_run, "preview")

    # then it is granted every read refresh makes, and the release guard's lookup
    needed = {action for actions in REFRESH_READS.values() for action in actions}
    denied = sorted(a for a in needed | {"ecr:DescribeImages"} if not allows(policy, a))
    assert not denied, f"pulumi preview --refresh would stop on AccessDenied for {denied}"
    # and nothing else: every allowed action is a read
    actions = [
        action
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
    ]
    writes = [a for a in actions if not READ_ONLY.match(a) and a != "ecr:GetAuthorizationToken"]
    assert not writes, f"the preview role must be read-only, allows {writes}"


def test_only_main_and_production_roles_write_anything(nonprod_oidc_run: StackRun) -> None:
    # given the roles branches and pull requests can assume
    for purpose in ("preview", "train"):
        policy = permissions(nonprod_oidc_run, purpose)

        # then none of them can write the DVC remote, the registry or the bucket
        for action in ("s3:PutObject", "s3:DeleteObject", "ecr:PutImage", "ecr:DeleteRepository"):
            assert not allows(policy, action), f"the {purpose} role allows {action}"


def test_deploy_and_promote_roles_cannot_change_settings(nonprod_oidc_run: StackRun) -> None:
    # given the writers' policies
    deploy = permissions(nonprod_oidc_run, "deploy")
    promote = permissions(nonprod_oidc_run, "promote")

    # then the list holds for each
    for action in (
        "s3:DeleteObjectVersion",
        "s3:PutBucketPublicAccessBlock",
        "s3:DeleteBucket",
        "ecr:SetRepositoryPolicy",
        "ecr:PutImageTagMutability",
    ):
        assert not allows(deploy, action), f"deploy allows {action}"
    for action in ("ecr:PutImageTagMutability", "ecr:SetRepositoryPolicy", "ecr:DeleteRepository"):
        assert not allows(promote, action), f"promote allows {action}"
    # and each can still do its job
    assert allows(deploy, "ecr:PutImage") and allows(deploy, "ecr:DescribeImageScanFindings")
    assert allows(promote, "ecr:PutImage") and allows(promote, "ecr:BatchGetImage")
