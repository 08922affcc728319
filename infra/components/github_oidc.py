"""GitHub Actions' way into AWS: the OIDC provider (optional) and three least-privilege roles.

Every role trusts only tokens GitHub issued for one repository, with audience sts.amazonaws.com:
  preview  pull requests only (`repo:<repo>:pull_request`); read-only: what `pulumi preview` of
           both stacks reads, and `dvc pull` of the model for the image check
  train    any branch of the repository; reads new_ML_data/, reads and writes DVC_Artefacts/
  deploy   the deploy branch (default main) and the `production` environment only; manages the
           bucket and both repositories and pushes images, but has no IAM rights, so it cannot
           widen its own permissions (an administrator applies changes to these roles)
An AWS account has one OIDC provider per URL: create it here (createOidcProvider) or reuse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.components.bucket import DATA_PREFIX, DVC_PREFIX

GITHUB_OIDC_HOST: Final = "token.actions.githubusercontent.com"
AUDIENCE: Final = "sts.amazonaws.com"
PRODUCTION_ENVIRONMENT: Final = "production"
MAX_SESSION_SECONDS: Final = 3600


@dataclass(frozen=True)
class GithubOidcArgs:
    github_repository: str
    create_provider: bool
    deploy_branch: str
    name_prefix: str
    region: str
    bucket_name: str
    repository_names: tuple[str, ...]


def trust_policy(provider_arn: str, subjects: list[str]) -> str:
    """Allow AssumeRoleWithWebIdentity for these token subjects, audience STS only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": AUDIENCE},
                        # StringLike so a branch wildcard works; subjects are pinned to the repo.
                        "StringLike": {f"{GITHUB_OIDC_HOST}:sub": subjects},
                    },
                }
            ],
        },
        sort_keys=True,
    )


def _document(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def preview_policy(bucket: str, repository_arns: list[str]) -> str:
    return _document(
        [
            {
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "ReadRepositories",
                "Effect": "Allow",
                "Action": [
                    "ecr:DescribeRepositories",
                    "ecr:DescribeImages",
                    "ecr:ListImages",
                    "ecr:GetLifecyclePolicy",
                    "ecr:GetRepositoryPolicy",
                    "ecr:ListTagsForResource",
                ],
                "Resource": repository_arns,
            },
            {
                "Sid": "ReadBucketSettings",
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucket*",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetLifecycleConfiguration",
                    "s3:ListBucket",
                ],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "PullModel",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{DVC_PREFIX}*",
            },
        ]
    )


def listable_prefixes() -> list[str]:
    """The two prefixes, as DVC and s3fs list them: with and without the trailing slash."""
    return [
        pattern
        for prefix in (DATA_PREFIX, DVC_PREFIX)
        for pattern in (f"{prefix}*", prefix.rstrip("/"))
    ]


def train_policy(bucket: str) -> str:
    return _document(
        [
            {
                "Sid": "ListPrefixes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": listable_prefixes()}},
            },
            {
                "Sid": "ReadTrainingData",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{DATA_PREFIX}*",
            },
            {
                "Sid": "ReadWriteDvcRemote",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{DVC_PREFIX}*",
            },
        ]
    )


def deploy_policy(bucket: str, repository_arns: list[str]) -> str:
    return _document(
        [
            {
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "ManageRepositories",
                "Effect": "Allow",
                "Action": ["ecr:*"],
                "Resource": repository_arns,
            },
            {
                "Sid": "ManageBucket",
                "Effect": "Allow",
                "Action": ["s3:*"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ]
    )


class GithubOidc(pulumi.ComponentResource):
    """The OIDC provider (when asked) and the preview, train and deploy roles."""

    provider_arn: pulumi.Output[str]
    preview_role: aws.iam.Role
    train_role: aws.iam.Role
    deploy_role: aws.iam.Role

    def __init__(
        self, name: str, args: GithubOidcArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:identity:GithubOidc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if args.create_provider:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-provider",
                url=f"https://{GITHUB_OIDC_HOST}",
                client_id_lists=[AUDIENCE],
                opts=child,
            )
            self.provider_arn = provider.arn
        else:
            identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
            self.provider_arn = identity.account_id.apply(
                lambda account: f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"
            )
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        repository_arns = account_id.apply(
            lambda account: [
                f"arn:aws:ecr:{args.region}:{account}:repository/{repository}"
                for repository in args.repository_names
            ]
        )

        repo = args.github_repository
        roles = {
            "preview": (
                [f"repo:{repo}:pull_request"],
                repository_arns.apply(lambda arns: preview_policy(args.bucket_name, arns)),
                "read-only: pulumi preview of both stacks on pull requests",
            ),
            "train": (
                [f"repo:{repo}:ref:refs/heads/*"],
                pulumi.Output.from_input(train_policy(args.bucket_name)),
                "training: read new_ML_data/, read and write the DVC remote",
            ),
            "deploy": (
                [
                    f"repo:{repo}:ref:refs/heads/{args.deploy_branch}",
                    f"repo:{repo}:environment:{PRODUCTION_ENVIRONMENT}",
                ],
                repository_arns.apply(lambda arns: deploy_policy(args.bucket_name, arns)),
                "pulumi up of nonprod and prod from the protected branch and environment",
            ),
        }
        created: dict[str, aws.iam.Role] = {}
        for purpose, (subjects, permissions, description) in roles.items():
            role = aws.iam.Role(
                f"{name}-{purpose}",
                name=f"{args.name_prefix}-github-{purpose}",
                description=f"GitHub Actions {repo}: {description}",
                assume_role_policy=self.provider_arn.apply(
                    lambda arn, subjects=subjects: trust_policy(arn, subjects)
                ),
                max_session_duration=MAX_SESSION_SECONDS,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{purpose}-permissions",
                role=role.id,
                policy=permissions,
                opts=child,
            )
            created[purpose] = role
        self.preview_role = created["preview"]
        self.train_role = created["train"]
        self.deploy_role = created["deploy"]

        self.register_outputs(
            {
                "previewRoleArn": self.preview_role.arn,
                "trainRoleArn": self.train_role.arn,
                "deployRoleArn": self.deploy_role.arn,
            }
        )
