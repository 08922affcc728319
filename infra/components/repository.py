"""An ECR repository for the service image: immutable tags, scanned, encrypted, pruned.

Lifecycle (ECR applies rules by priority; an image matched by a rule is not seen by later ones):
  1. images tagged v*: keep the newest `keep_releases`, expire older releases
  2. untagged images (build leftovers): expire after `retention_days`
  3. anything else (tagged, but not a release): expire after `retention_days`
The repository policy lets principals of this account pull and nothing more (pushes need IAM
permissions as well); a protected repository (prod) also denies deleting images to everyone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

RELEASE_TAG_PREFIX: Final = "v"
PULL_ACTIONS: Final = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)


@dataclass(frozen=True)
class ImageRepositoryArgs:
    name: str
    retention_days: int
    keep_releases: int
    # Prod: `protect` the repository, never force-delete it, keep it (and its images) in AWS
    # when the resource leaves the program, and deny image deletion in its policy.
    protected: bool


def lifecycle_policy(retention_days: int, keep_releases: int) -> str:
    rules: list[dict[str, Any]] = [
        {
            "rulePriority": 1,
            "description": f"keep the newest {keep_releases} releases (v* tags)",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": [f"{RELEASE_TAG_PREFIX}*"],
                "countType": "imageCountMoreThan",
                "countNumber": keep_releases,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"expire untagged images after {retention_days} days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": retention_days,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": f"expire images that are not releases after {retention_days} days",
            "selection": {
                "tagStatus": "any",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": retention_days,
            },
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules}, sort_keys=True)


def repository_policy(account_id: str, protected: bool) -> str:
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AllowPullWithinAccount",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": list(PULL_ACTIONS),
        }
    ]
    if protected:
        statements.append(
            {
                "Sid": "DenyImageDeletion",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["ecr:BatchDeleteImage"],
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class ImageRepository(pulumi.ComponentResource):
    """One ECR repository with its lifecycle and repository policies."""

    repository: aws.ecr.Repository
    name: pulumi.Output[str]
    url: pulumi.Output[str]
    arn: pulumi.Output[str]
    registry_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImageRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:registry:ImageRepository", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.repository = aws.ecr.Repository(
            name,
            name=args.name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
            ],
            force_delete=False,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protected, retain_on_delete=args.protected
            ),
        )
        self.name = self.repository.name
        self.url = self.repository.repository_url
        self.arn = self.repository.arn
        self.registry_id = self.repository.registry_id

        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=lifecycle_policy(args.retention_days, args.keep_releases),
            opts=child,
        )
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        aws.ecr.RepositoryPolicy(
            f"{name}-policy",
            repository=self.repository.name,
            policy=account_id.apply(lambda account: repository_policy(account, args.protected)),
            opts=child,
        )

        self.register_outputs({"name": self.name, "url": self.url, "arn": self.arn})
