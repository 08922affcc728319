"""GitHub Actions' way into AWS: the OIDC provider (optional) and four least-privilege roles.

Every role trusts only tokens GitHub issued for one repository, with audience sts.amazonaws.com:
  preview  pull requests only (`repo:<repo>:pull_request`); read-only: describe/list/get on both
           repositories and the bucket's settings (what `pulumi preview` of both stacks reads), and
           s3:GetObject under DVC_Artefacts/ (`dvc pull` of the model for the image check)
  train    any branch of the repository; s3:GetObject under new_ML_data/, s3:GetObject and
           s3:PutObject under DVC_Artefacts/, s3:ListBucket of those two prefixes
  deploy   the deploy branch only (default main; `pulumi up --stack nonprod`): every ECR action
           (ecr:*) on the nonprod repository, deleting it and its images included, and every S3
           action (s3:*) on the bucket and its objects, deleting them included; no prod rights
  promote  the `production` environment only (`pulumi up --stack prod`): pull from the nonprod
           repository; push to the prod repository; create, describe and update the prod repository
           and its lifecycle and repository policies. No ecr:DeleteRepository, no
           ecr:BatchDeleteImage, no ecr:DeleteRepositoryPolicy, no S3, and KMS only as ECR's
           encryption needs it (kms:CreateGrant and kms:DescribeKey via ECR)
No role has IAM rights, so none can widen its own permissions (an administrator applies changes to
these roles). An AWS account has one OIDC provider per URL: create it here (createOidcProvider) or
reuse it.
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
    nonprod_repository_name: str
    prod_repository_name: str


# Pull an image: its manifest and layers.
PULL_ACTIONS: Final = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
)
# Push an image (layers, then the manifest under a tag), on top of pulling.
PUSH_ACTIONS: Final = (
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# What `pulumi up --stack prod` does to the prod repository (infra/components/repository.py):
# create it, read it back, update its settings, and put its lifecycle and repository policies.
# ecr:SetRepositoryPolicy is needed because the stack creates the repository policy (the one with
# the DenyImageDeletion statement) and must be able to update it; there is no delete counterpart.
PROD_REPOSITORY_ACTIONS: Final = (
    "ecr:CreateRepository",
    "ecr:DescribeRepositories",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
    "ecr:PutImageScanningConfiguration",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:SetRepositoryPolicy",
)
# Never for promote: deleting the prod repository, its images or its deletion guard.
PROMOTE_DENIED_ACTIONS: Final = (
    "ecr:BatchDeleteImage",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
)


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


def ecr_encryption_statement(region: str) -> dict[str, Any]:
    """KMS as ECR needs it to create a KMS-encrypted repository (AWS managed key), via ECR only."""
    return {
        "Sid": "EcrRepositoryEncryption",
        "Effect": "Allow",
        "Action": ["kms:CreateGrant", "kms:DescribeKey"],
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"ecr.{region}.amazonaws.com"}},
    }


def deploy_policy(bucket: str, nonprod_repository_arn: str, region: str) -> str:
    return _document(
        [
            {
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "AllEcrActionsOnNonprodRepository",
                "Effect": "Allow",
                "Action": ["ecr:*"],
                "Resource": nonprod_repository_arn,
            },
            ecr_encryption_statement(region),
            {
                "Sid": "AllS3ActionsOnBucket",
                "Effect": "Allow",
                "Action": ["s3:*"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ]
    )


def promote_policy(nonprod_repository_arn: str, prod_repository_arn: str, region: str) -> str:
    return _document(
        [
            {
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "PullFromNonprod",
                "Effect": "Allow",
                "Action": list(PULL_ACTIONS),
                "Resource": nonprod_repository_arn,
            },
            {
                "Sid": "PushToProd",
                "Effect": "Allow",
                "Action": sorted(PULL_ACTIONS + PUSH_ACTIONS),
                "Resource": prod_repository_arn,
            },
            {
                "Sid": "ProdRepositoryStack",
                "Effect": "Allow",
                "Action": list(PROD_REPOSITORY_ACTIONS),
                "Resource": prod_repository_arn,
            },
            ecr_encryption_statement(region),
            {
                # Explicit, so a broader policy attached later cannot grant these either.
                "Sid": "NeverDeleteFromProd",
                "Effect": "Deny",
                "Action": list(PROMOTE_DENIED_ACTIONS),
                "Resource": prod_repository_arn,
            },
        ]
    )


class GithubOidc(pulumi.ComponentResource):
    """The OIDC provider (when asked) and the preview, train, deploy and promote roles."""

    provider_arn: pulumi.Output[str]
    preview_role: aws.iam.Role
    train_role: aws.iam.Role
    deploy_role: aws.iam.Role
    promote_role: aws.iam.Role

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

        def repository_arn(account: str, repository: str) -> str:
            return f"arn:aws:ecr:{args.region}:{account}:repository/{repository}"

        nonprod_arn = account_id.apply(
            lambda account: repository_arn(account, args.nonprod_repository_name)
        )
        prod_arn = account_id.apply(
            lambda account: repository_arn(account, args.prod_repository_name)
        )
        repository_arns = pulumi.Output.all(nonprod_arn, prod_arn)

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
                [f"repo:{repo}:ref:refs/heads/{args.deploy_branch}"],
                nonprod_arn.apply(lambda arn: deploy_policy(args.bucket_name, arn, args.region)),
                f"pulumi up of nonprod from branch {args.deploy_branch}: all of ECR on the nonprod "
                "repository, all of S3 on the bucket",
            ),
            "promote": (
                [f"repo:{repo}:environment:{PRODUCTION_ENVIRONMENT}"],
                repository_arns.apply(lambda arns: promote_policy(arns[0], arns[1], args.region)),
                f"pulumi up of prod from environment {PRODUCTION_ENVIRONMENT}: pull nonprod, "
                "push and update the prod repository, never delete",
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
        self.promote_role = created["promote"]

        self.register_outputs(
            {
                "previewRoleArn": self.preview_role.arn,
                "trainRoleArn": self.train_role.arn,
                "deployRoleArn": self.deploy_role.arn,
                "promoteRoleArn": self.promote_role.arn,
            }
        )
