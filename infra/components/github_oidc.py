"""GitHub Actions' way into AWS: the OIDC provider (optional) and five least-privilege roles.

Every role trusts only tokens GitHub issued for one repository, with audience sts.amazonaws.com:
  preview    pull requests and the `drift` environment; read-only: exactly what
             `pulumi preview --refresh` of both stacks reads (REFRESH_READS), the release guard's
             ecr:DescribeImages, and s3:GetObject under DVC_Artefacts/ (`dvc pull` of the model)
  train      any branch; s3:GetObject under new_ML_data/ and DVC_Artefacts/, listing of those two
             prefixes. It cannot write the DVC remote
  dvc-write  the deploy branch only (main): what train has plus s3:PutObject under DVC_Artefacts/,
             the only role that writes the DVC remote
  deploy     the deploy branch only (`pulumi up --stack nonprod`, then the release evidence):
             pull, push and read on the nonprod repository, s3:GetObject and listing of
             DVC_Artefacts/. No repository policy, tag mutability, lifecycle or delete rights, no
             bucket settings, no object-version deletes; an explicit deny says so
  promote    the `production` environment only (`pulumi up --stack prod`): pull from nonprod
             (its `verified-<version>` evidence included), pull and push to prod. No repository
             settings and no deletes (explicit deny), no S3
No role has IAM rights, so none can widen its own permissions; none can change bucket or repository
settings either: an administrator applies those with their own credentials (docs/deploying.md).
An AWS account has one OIDC provider per URL: create it here (createOidcProvider) or reuse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.components.bucket import DATA_PREFIX, DVC_PREFIX

# What the deploy role (main) may never do, weaken the bucket or the registry or destroy data, and
# what the promote role (production) may never do, delete from prod or change its repository's
# guards: the policy pack's own lists (it states the property, and imports nothing of this), so
# the roles' explicit denies and the rules that check them are one list each.
from infra.policy.rules import DEPLOY_DENIED_ACTIONS, PROMOTE_DENIED_ACTIONS
from infra.runtime_policies import NETWORK_LOOKUP_ACTIONS, runtime_base_name

GITHUB_OIDC_HOST: Final = "token.actions.githubusercontent.com"
AUDIENCE: Final = "sts.amazonaws.com"
PRODUCTION_ENVIRONMENT: Final = "production"
DRIFT_ENVIRONMENT: Final = "drift"
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
# Reading a repository's settings and scan results (no change to any of them).
REPOSITORY_READ_ACTIONS: Final = (
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeRepositories",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
)
# What `pulumi refresh` reads for each resource type the stacks hold (pulumi-aws v7 reads each
# resource back with these calls). tests/infra check that every type the program creates is here
# and that the preview role is granted every action, so refresh never stops on AccessDenied.
REFRESH_READS: Final[dict[str, tuple[str, ...]]] = {
    "aws:s3/bucket:Bucket": (
        "s3:GetAccelerateConfiguration",
        "s3:GetBucketAcl",
        "s3:GetBucketCORS",
        "s3:GetBucketLocation",
        "s3:GetBucketLogging",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketPolicy",
        "s3:GetBucketRequestPayment",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:GetBucketWebsite",
        "s3:GetEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration",
        "s3:ListBucket",
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("s3:GetBucketOwnershipControls",),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("s3:GetBucketPublicAccessBlock",),
    "aws:s3/bucketVersioning:BucketVersioning": ("s3:GetBucketVersioning",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "s3:GetEncryptionConfiguration",
    ),
    "aws:s3/bucketPolicy:BucketPolicy": ("s3:GetBucketPolicy",),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "s3:GetLifecycleConfiguration",
    ),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("s3:GetObject", "s3:GetObjectTagging"),
    "aws:ecr/repository:Repository": ("ecr:DescribeRepositories", "ecr:ListTagsForResource"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("ecr:GetLifecyclePolicy",),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ("ecr:GetRepositoryPolicy",),
    "aws:iam/role:Role": (
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListRolePolicies",
    ),
    "aws:iam/rolePolicy:RolePolicy": ("iam:GetRolePolicy",),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("iam:GetOpenIDConnectProvider",),
    # The built image is read back from the registry with the ambient Docker login.
    "docker-build:index:Image": ("ecr:GetAuthorizationToken", *PULL_ACTIONS),
    # The runtime (infra/components/runtime.py). These describe calls take no resource but "*".
    "aws:ecs/cluster:Cluster": ("ecs:DescribeClusters", "ecs:ListTagsForResource"),
    "aws:ecs/service:Service": ("ecs:DescribeServices", "ecs:ListTagsForResource"),
    "aws:ecs/taskDefinition:TaskDefinition": (
        "ecs:DescribeTaskDefinition",
        "ecs:ListTagsForResource",
    ),
    "aws:cloudwatch/logGroup:LogGroup": ("logs:DescribeLogGroups", "logs:ListTagsForResource"),
    "aws:ec2/securityGroup:SecurityGroup": ("ec2:DescribeSecurityGroups",),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ec2:DescribeSecurityGroupRules",
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("ec2:DescribeSecurityGroupRules",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("ec2:DescribePrefixLists", "ec2:DescribeVpcEndpoints"),
    "aws:lb/loadBalancer:LoadBalancer": (
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTags",
    ),
    "aws:lb/targetGroup:TargetGroup": (
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetGroups",
    ),
    "aws:lb/listener:Listener": (
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTags",
    ),
    "aws:appautoscaling/target:Target": (
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:ListTagsForResource",
    ),
    "aws:appautoscaling/policy:Policy": ("application-autoscaling:DescribeScalingPolicies",),
}
# Resource types whose reads are account-wide (no resource-level permissions): the runtime's.
RUNTIME_READ_SERVICES: Final = ("ecs:", "logs:", "ec2:", "elasticloadbalancing:", "application-")


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


def _reads_of(types: list[str]) -> list[str]:
    return sorted({action for kind in types for action in REFRESH_READS[kind]})


BUCKET_OBJECT: Final = "aws:s3/bucketObjectv2:BucketObjectv2"


def preview_policy(bucket: str, repository_arns: list[str], account: str, name_prefix: str) -> str:
    """Read-only: what `pulumi preview --refresh` of both stacks and the model pull read."""
    object_reads = list(REFRESH_READS[BUCKET_OBJECT])
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
                "Action": sorted(set(PULL_ACTIONS + REPOSITORY_READ_ACTIONS)),
                "Resource": repository_arns,
            },
            {
                "Sid": "ReadBucketSettings",
                "Effect": "Allow",
                "Action": _reads_of(
                    [k for k in REFRESH_READS if k.startswith("aws:s3/") and k != BUCKET_OBJECT]
                ),
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "ReadPrefixObjects",
                "Effect": "Allow",
                "Action": object_reads,
                "Resource": [f"arn:aws:s3:::{bucket}/{DATA_PREFIX}"],
            },
            {
                "Sid": "PullModel",
                "Effect": "Allow",
                "Action": object_reads,
                "Resource": f"arn:aws:s3:::{bucket}/{DVC_PREFIX}*",
            },
            {
                "Sid": "ReadRoles",
                "Effect": "Allow",
                "Action": _reads_of([k for k in REFRESH_READS if k.startswith("aws:iam/")]),
                "Resource": [
                    f"arn:aws:iam::{account}:role/{name_prefix}-github-*",
                    f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}",
                    # The runtime's task and task execution roles of both stacks.
                    *(
                        f"arn:aws:iam::{account}:role/{runtime_base_name(name_prefix, stack)}-task*"
                        for stack in ("nonprod", "prod")
                    ),
                ],
            },
            {
                "Sid": "ReadRuntimes",
                "Effect": "Allow",
                "Action": sorted(
                    {*NETWORK_LOOKUP_ACTIONS}
                    | {
                        action
                        for actions in REFRESH_READS.values()
                        for action in actions
                        if action.startswith(RUNTIME_READ_SERVICES)
                    }
                ),
                "Resource": "*",
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


def train_policy(bucket: str, write_dvc_remote: bool = False) -> str:
    """Training: read the data and the DVC remote; write the remote only for dvc-write (main)."""
    dvc_actions = ["s3:GetObject", "s3:PutObject"] if write_dvc_remote else ["s3:GetObject"]
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
                "Sid": "WriteDvcRemote" if write_dvc_remote else "ReadDvcRemote",
                "Effect": "Allow",
                "Action": dvc_actions,
                "Resource": f"arn:aws:s3:::{bucket}/{DVC_PREFIX}*",
            },
        ]
    )


def _deny(sid: str, actions: tuple[str, ...]) -> dict[str, Any]:
    # Resource "*" and explicit: a broader policy attached later cannot grant these either.
    return {"Sid": sid, "Effect": "Deny", "Action": list(actions), "Resource": "*"}


def deploy_policy(bucket: str, nonprod_repository_arn: str) -> str:
    """Publish to nonprod: push and read images, pull the model; change no settings."""
    return _document(
        [
            {
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "PublishToNonprod",
                "Effect": "Allow",
                "Action": sorted(set(PULL_ACTIONS + PUSH_ACTIONS + REPOSITORY_READ_ACTIONS)),
                "Resource": nonprod_repository_arn,
            },
            {
                "Sid": "ListDvcRemote",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {
                    "StringLike": {"s3:prefix": [f"{DVC_PREFIX}*", DVC_PREFIX.rstrip("/")]}
                },
            },
            {
                "Sid": "PullModel",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{DVC_PREFIX}*",
            },
            _deny("NeverWeakenOrDestroy", DEPLOY_DENIED_ACTIONS),
        ]
    )


def promote_policy(nonprod_repository_arn: str, prod_repository_arn: str) -> str:
    """Promote to prod: pull nonprod, push prod; no settings, no deletes."""
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
                "Action": sorted({*PULL_ACTIONS, *PUSH_ACTIONS, "ecr:DescribeRepositories"}),
                "Resource": prod_repository_arn,
            },
            _deny("NeverDeleteOrUnguardProd", PROMOTE_DENIED_ACTIONS),
        ]
    )


class GithubOidc(pulumi.ComponentResource):
    """The OIDC provider (when asked) and the preview, train, dvc-write, deploy, promote roles."""

    provider_arn: pulumi.Output[str]
    preview_role: aws.iam.Role
    train_role: aws.iam.Role
    deploy_role: aws.iam.Role
    promote_role: aws.iam.Role
    dvc_write_role: aws.iam.Role

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
        main = f"repo:{repo}:ref:refs/heads/{args.deploy_branch}"
        roles = {
            "preview": (
                [f"repo:{repo}:pull_request", f"repo:{repo}:environment:{DRIFT_ENVIRONMENT}"],
                pulumi.Output.all(repository_arns, account_id).apply(
                    lambda values: preview_policy(
                        args.bucket_name, values[0], values[1], args.name_prefix
                    )
                ),
                "read-only: pulumi preview --refresh of both stacks (pull requests, drift check)",
            ),
            "train": (
                [f"repo:{repo}:ref:refs/heads/*"],
                pulumi.Output.from_input(train_policy(args.bucket_name)),
                "training on any branch: read new_ML_data/ and the DVC remote, write nothing",
            ),
            "dvc-write": (
                [main],
                pulumi.Output.from_input(train_policy(args.bucket_name, write_dvc_remote=True)),
                f"training on {args.deploy_branch}: read new_ML_data/, read and write the DVC "
                "remote",
            ),
            "deploy": (
                [main],
                nonprod_arn.apply(lambda arn: deploy_policy(args.bucket_name, arn)),
                f"pulumi up of nonprod from branch {args.deploy_branch}: push to and read the "
                "nonprod repository, pull the model; no settings, no deletes",
            ),
            "promote": (
                [f"repo:{repo}:environment:{PRODUCTION_ENVIRONMENT}"],
                repository_arns.apply(lambda arns: promote_policy(arns[0], arns[1])),
                f"pulumi up of prod from environment {PRODUCTION_ENVIRONMENT}: pull nonprod, "
                "push prod; no settings, no deletes",
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
                # A plain name, so the policy rules can tell the role's purpose during a preview.
                name=f"{args.name_prefix}-github-{purpose}-permissions",
                role=role.id,
                policy=permissions,
                opts=child,
            )
            created[purpose] = role
        self.preview_role = created["preview"]
        self.train_role = created["train"]
        self.deploy_role = created["deploy"]
        self.promote_role = created["promote"]
        self.dvc_write_role = created["dvc-write"]

        self.register_outputs(
            {
                "previewRoleArn": self.preview_role.arn,
                "trainRoleArn": self.train_role.arn,
                "deployRoleArn": self.deploy_role.arn,
                "promoteRoleArn": self.promote_role.arn,
                "dvcWriteRoleArn": self.dvc_write_role.arn,
            }
        )
