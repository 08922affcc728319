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


def runtime_base_name(name_prefix: str, stack: str) -> str:
    """`<prefix>-<stack>`: the cluster, task family and role names (ECS and IAM allow no '.')."""
    return f"{name_prefix.replace('.', '-')}-{stack}"


def execution_role_name(base_name: str) -> str:
    return f"{base_name}-task-execution"


def task_role_name(base_name: str) -> str:
    return f"{base_name}-task"


# The default VPC and its subnets and route tables, looked up by every preview and update.
NETWORK_LOOKUP_ACTIONS: Final = (
    "ec2:DescribeRouteTables",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)
# These ECS actions accept no resource but "*" (AWS's service authorization reference).
TASK_DEFINITION_ACTIONS: Final = (
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
)
SERVICE_ROLL_ACTIONS: Final = ("ecs:DescribeServices", "ecs:UpdateService")


def network_lookup_statement() -> dict[str, Any]:
    """Read-only look-ups of the VPC, subnets and route tables (no resource-level form)."""
    return {
        "Sid": "RuntimeNetworkLookups",
        "Effect": "Allow",
        "Action": list(NETWORK_LOOKUP_ACTIONS),
        "Resource": "*",
    }


def roll_service_policy(account_id: str, region: str, base_name: str) -> str:
    """Roll one stack's service to a new task definition (a new digest), and nothing more.

    Creating or changing the rest of the runtime (roles, load balancer, security groups,
    scaling, endpoints) stays with an administrator, as changes to the CI roles do: these
    rights register task definitions, pass the stack's two task roles to ECS only, and update
    and watch the stack's one service.
    """
    ecs = f"arn:aws:ecs:{region}:{account_id}"
    iam = f"arn:aws:iam::{account_id}:role"
    return _document(
        [
            network_lookup_statement(),
            {
                "Sid": "RegisterTaskDefinitions",
                "Effect": "Allow",
                "Action": list(TASK_DEFINITION_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "RollOwnService",
                "Effect": "Allow",
                "Action": list(SERVICE_ROLL_ACTIONS),
                "Resource": f"{ecs}:service/{base_name}/predict_buy_app",
            },
            {
                "Sid": "ReadOwnTags",
                "Effect": "Allow",
                "Action": ["ecs:ListTagsForResource"],
                "Resource": [
                    f"{ecs}:service/{base_name}/predict_buy_app",
                    f"{ecs}:task-definition/{base_name}:*",
                ],
            },
            {
                "Sid": "PassOwnTaskRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": [
                    f"{iam}/{execution_role_name(base_name)}",
                    f"{iam}/{task_role_name(base_name)}",
                ],
                "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
            },
        ]
    )
