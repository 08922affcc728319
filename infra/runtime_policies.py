"""IAM policy documents of the ECS runtime, as data: the task roles' trust and permissions.

  task execution role  ECS uses it to start a task: ecr:GetAuthorizationToken (account-wide by
                       AWS design, it names no repository), pulling layers and manifests of the
                       stack's own repository only, and writing log events to its log group only
  task role            what the service's code may do in AWS: nothing (no policy is attached)
Both trust only ecs-tasks.amazonaws.com acting for this account (aws:SourceAccount), so another
account's ECS cannot assume them.
"""

from __future__ import annotations

import json
from typing import Any, Final

ECS_TASKS: Final = "ecs-tasks.amazonaws.com"
# Pull one image: check and download its layers, read its manifest.
IMAGE_PULL_ACTIONS: Final = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)
LOG_WRITE_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")


def _document(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def ecs_tasks_trust_policy(account_id: str) -> str:
    """Let ECS tasks of this account, and nothing else, assume the role."""
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": ECS_TASKS},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ]
    )


def execution_role_policy(repository_arn: str, log_group_arn: str) -> str:
    """Pull from `repository_arn` only, write log events to `log_group_arn` only."""
    return _document(
        [
            {
                # GetAuthorizationToken has no resource-level permissions: "*" is the only form.
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "PullOwnRepository",
                "Effect": "Allow",
                "Action": list(IMAGE_PULL_ACTIONS),
                "Resource": repository_arn,
            },
            {
                "Sid": "WriteOwnLogGroup",
                "Effect": "Allow",
                "Action": list(LOG_WRITE_ACTIONS),
                "Resource": f"{log_group_arn.removesuffix(':*')}:log-stream:*",
            },
        ]
    )
