"""The policy rules on every resource both mocked stacks create, and on deliberately bad ones.

The rules are called directly (constructing a PolicyPack would start its gRPC server and block).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from infra.policy import rules
from tests.infra.conftest import StackRun

Mutation = Callable[[list[dict[str, Any]]], None]


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def resource_args(resource: dict[str, Any]) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=resource["type"],
        props=resource["inputs"],
        urn=f"urn:pulumi:test::predict-buy::{resource['type']}::{resource['name']}",
        name=resource["name"],
        opts=options(resource.get("protect", False)),
        provider=None,
    )


def stack_args(resources: list[dict[str, Any]]) -> StackValidationArgs:
    return StackValidationArgs(
        resources=[
            PolicyResource(
                resource_type=r["type"],
                props=r["outputs"],
                urn=f"urn:pulumi:test::predict-buy::{r['type']}::{r['name']}",
                name=r["name"],
                opts=options(r.get("protect", False)),
                provider=None,
                parent=None,
                dependencies=[],
                property_dependencies={},
            )
            for r in resources
            if r["custom"]
        ]
    )


def violations(resources: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every rule on every resource: {rule name: [messages]} for the rules that fired."""
    found: dict[str, list[str]] = {}
    for name in rules.RESOURCE_RULES:
        validate = rules.resource_rule(name)
        for resource in resources:
            if resource["custom"]:
                validate(
                    resource_args(resource),
                    lambda message, urn=None, name=name: found.setdefault(name, []).append(message),
                )
    for name, (_, rule) in rules.STACK_RULES.items():
        rule(
            stack_args(resources),
            lambda message, urn=None, name=name: found.setdefault(name, []).append(message),
        )
    return found


def test_rules_have_unique_names_and_descriptions() -> None:
    # given / when
    policies = rules.policies()

    # then
    names = [policy.name for policy in policies]
    assert len(names) == len(set(names)) == len(rules.RESOURCE_RULES) + len(rules.STACK_RULES)
    assert all(policy.description for policy in policies)


def test_no_violations_in_either_stack(
    nonprod_oidc_run: StackRun, nonprod_run: StackRun, prod_run: StackRun
) -> None:
    # given every resource both stacks create (with the OIDC roles)
    # when / then
    for run in (nonprod_oidc_run, nonprod_run, prod_run):
        assert run.error is None, run.error
        assert violations(run.resources) == {}


def _find(resources: list[dict[str, Any]], resource_type: str) -> dict[str, Any]:
    return next(r for r in resources if r["type"] == resource_type)


def _set_input(resource_type: str, key: str, value: Any) -> Mutation:
    def mutate(resources: list[dict[str, Any]]) -> None:
        target = _find(resources, resource_type)
        target["inputs"][key] = value
        target["outputs"][key] = value

    return mutate


def _drop(resource_type: str) -> Mutation:
    def mutate(resources: list[dict[str, Any]]) -> None:
        resources.remove(_find(resources, resource_type))

    return mutate


def _unprotect(resources: list[dict[str, Any]]) -> None:
    _find(resources, rules.REPOSITORY)["protect"] = False


def _widen_trust(resources: list[dict[str, Any]]) -> None:
    role = next(r for r in resources if r["type"] == rules.ROLE and r["name"].startswith("github-"))
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]
    condition["StringLike"]["token.actions.githubusercontent.com:sub"] = ["repo:*"]
    del condition["StringEquals"]
    role["inputs"]["assumeRolePolicy"] = json.dumps(trust)


def _weak_lifecycle(resources: list[dict[str, Any]]) -> None:
    lifecycle = _find(resources, rules.REPOSITORY_LIFECYCLE)
    policy = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "action": {"type": "expire"},
                    "selection": {"tagStatus": "tagged"},
                }
            ]
        }
    )
    lifecycle["inputs"]["policy"] = lifecycle["outputs"]["policy"] = policy


def _unprotect_bucket(resources: list[dict[str, Any]]) -> None:
    _find(resources, rules.BUCKET)["protect"] = False


def _role_policy(
    purpose: str, change: Callable[[dict[str, Any]], None], suffix: str = "permissions"
) -> Mutation:
    """Edit one policy of a GitHub role (found by its plain name) in place."""

    def mutate(resources: list[dict[str, Any]]) -> None:
        [target] = [
            r
            for r in resources
            if r["type"] == rules.ROLE_POLICY
            and r["inputs"].get("name") == f"ce7-grp-1-github-{purpose}-{suffix}"
        ]
        document = json.loads(target["inputs"]["policy"])
        change(document)
        target["inputs"]["policy"] = target["outputs"]["policy"] = json.dumps(document)

    return mutate


def _allow(actions: list[str], resource: str = "*", keep_denies: bool = False) -> Callable:
    def change(document: dict[str, Any]) -> None:
        if not keep_denies:
            document["Statement"] = [s for s in document["Statement"] if s["Effect"] != "Deny"]
        document["Statement"].append({"Effect": "Allow", "Action": actions, "Resource": resource})

    return change


BAD = [
    ("s3-bucket-protected", "nonprod", _unprotect_bucket),
    (
        "iam-deploy-least-privilege",
        "oidc",
        _role_policy("deploy", _allow(["s3:*"], "arn:aws:s3:::ce7-grp-1-bucket")),
    ),
    ("iam-deploy-least-privilege", "oidc", _role_policy("deploy", _allow(["ecr:Set*"]))),
    # The runtime's second policy of each role is held to the same rules as the first.
    (
        "iam-deploy-least-privilege",
        "oidc",
        _role_policy("deploy", _allow(["s3:DeleteBucket"]), "runtime-permissions"),
    ),
    (
        "iam-promote-least-privilege",
        "oidc",
        _role_policy("promote", _allow(["ecr:*"]), "runtime-permissions"),
    ),
    (
        "iam-promote-least-privilege",
        "oidc",
        _role_policy("promote", _allow(["ecr:PutImageTagMutability"])),
    ),
    ("iam-promote-least-privilege", "oidc", _role_policy("promote", _allow(["*"]))),
    ("iam-preview-read-only", "oidc", _role_policy("preview", _allow(["ecr:PutImage"]))),
    (
        "dvc-remote-writers",
        "oidc",
        _role_policy(
            "train", _allow(["s3:PutObject"], "arn:aws:s3:::ce7-grp-1-bucket/DVC_Artefacts/*")
        ),
    ),
    (
        "dvc-remote-writers",
        "oidc",
        _role_policy("train", _allow(["s3:Put*"], "arn:aws:s3:::ce7-grp-1-bucket/*")),
    ),
    (
        "s3-encryption-kms",
        "nonprod",
        _set_input(
            rules.ENCRYPTION,
            "rules",
            [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
        ),
    ),
    (
        "s3-versioning-enabled",
        "nonprod",
        _set_input(rules.VERSIONING, "versioningConfiguration", {"status": "Suspended"}),
    ),
    (
        "s3-public-access-blocked",
        "nonprod",
        _set_input(rules.PUBLIC_ACCESS, "blockPublicPolicy", False),
    ),
    (
        "s3-ownership-enforced",
        "nonprod",
        _set_input(rules.OWNERSHIP, "rule", {"objectOwnership": "ObjectWriter"}),
    ),
    ("s3-tls-only", "nonprod", _set_input(rules.BUCKET_POLICY, "policy", '{"Statement": []}')),
    ("s3-no-acl", "nonprod", _set_input(rules.BUCKET, "acl", "public-read")),
    ("s3-bucket-complete", "nonprod", _drop(rules.BUCKET_LIFECYCLE)),
    ("s3-bucket-complete", "nonprod", _drop(rules.ENCRYPTION)),
    (
        "ecr-scan-on-push",
        "prod",
        _set_input(rules.REPOSITORY, "imageScanningConfiguration", {"scanOnPush": False}),
    ),
    (
        "ecr-tag-immutability",
        "nonprod",
        _set_input(rules.REPOSITORY, "imageTagMutability", "MUTABLE"),
    ),
    (
        "ecr-encryption-kms",
        "nonprod",
        _set_input(rules.REPOSITORY, "encryptionConfigurations", [{"encryptionType": "AES256"}]),
    ),
    ("ecr-lifecycle-present", "prod", _drop(rules.REPOSITORY_LIFECYCLE)),
    ("ecr-lifecycle-present", "nonprod", _weak_lifecycle),
    ("prod-protected", "prod", _unprotect),
    ("prod-protected", "prod", _set_input(rules.REPOSITORY, "forceDelete", True)),
    ("github-oidc-trust-pinned", "oidc", _widen_trust),
]


@pytest.mark.parametrize(
    ("rule", "stack", "break_it"),
    BAD,
    ids=[f"{rule}-{index}" for index, (rule, _, _) in enumerate(BAD)],
)
def test_each_rule_reports_its_violation(
    rule: str,
    stack: str,
    break_it: Mutation,
    nonprod_run: StackRun,
    nonprod_oidc_run: StackRun,
    prod_run: StackRun,
) -> None:
    # given one stack's resources with one setting broken
    run = {"nonprod": nonprod_run, "prod": prod_run, "oidc": nonprod_oidc_run}[stack]
    resources = copy.deepcopy(run.resources)
    break_it(resources)

    # when
    found = violations(resources)

    # then exactly the rule for that setting fires
    assert set(found) == {rule}, f"expected only {rule} to fire, got {found}"
    assert all(message for message in found[rule])


def test_an_explicit_deny_keeps_a_wildcard_from_granting_a_denied_action() -> None:
    # given a policy that allows ecr:* but denies ecr:SetRepositoryPolicy everywhere
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:::repository/x"},
            {"Effect": "Deny", "Action": ["ecr:SetRepositoryPolicy"], "Resource": "*"},
        ]
    }

    # when / then
    assert rules.allows(document, "ecr:PutImage")
    assert not rules.allows(document, "ecr:SetRepositoryPolicy")
    assert rules.allows({"Statement": [{"Effect": "Allow", "NotAction": "s3:Get*"}]}, "ecr:X")


def test_the_rules_deny_what_the_roles_deny() -> None:
    # given the roles' lists (the components take the pack's: the pack imports no component)
    from infra.components import github_oidc

    # then the two cannot drift apart
    assert rules.DEPLOY_DENIED_ACTIONS == github_oidc.DEPLOY_DENIED_ACTIONS
    assert rules.PROMOTE_DENIED_ACTIONS == github_oidc.PROMOTE_DENIED_ACTIONS
    required = {
        "s3:DeleteObjectVersion",
        "s3:PutBucketPublicAccessBlock",
        "s3:DeleteBucket",
        "ecr:SetRepositoryPolicy",
        "ecr:PutImageTagMutability",
    }
    assert required <= set(rules.DEPLOY_DENIED_ACTIONS), "the issue's list for the deploy role"
    assert {"ecr:SetRepositoryPolicy", "ecr:PutImageTagMutability"} <= set(
        rules.PROMOTE_DENIED_ACTIONS
    )
