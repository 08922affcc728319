"""Runtime stack settings: read the ECS Fargate keys of `pulumi config`, validate, type them.

`read_runtime_settings` returns None when the stack is registry only (`registryOnly: true`).
Each error names the key, the value it got and what is allowed. Defaults are per stack: nonprod
is small (one task), prod runs at least two tasks so that it spans two availability zones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

from infra.errors import StackConfigError
from infra.settings import (
    NONPROD,
    PROD,
    PROJECT,
    STACKS,
    ConfigSource,
    read_boolean,
    read_integer,
)

# Fargate's allowed task sizes: CPU units -> allowed memory (MiB).
FARGATE_SIZES: Final[dict[int, tuple[int, ...]]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
# A hard ceiling on autoscaling, so a typo cannot scale a stack to hundreds of tasks.
MAX_TASKS_LIMIT: Final = 50
# Prod must survive the loss of one availability zone: at least two tasks, always.
PROD_MIN_TASKS: Final = 2

_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class RuntimeSettings:
    """One stack's ECS Fargate service: size, scaling, logs, network and TLS."""

    cpu: int
    memory: int
    desired_tasks: int
    min_tasks: int
    max_tasks: int
    requests_per_target: int
    cpu_target_percent: int
    log_retention_days: int
    certificate_arn: str | None
    # None: the account's default VPC and its default subnets (one per availability zone).
    vpc_id: str | None
    subnet_ids: tuple[str, ...] | None
    # Where the internet-facing load balancer lives: public subnets of the same VPC; defaults
    # to subnet_ids (the default VPC's subnets are public).
    load_balancer_subnet_ids: tuple[str, ...] | None
    # Interface endpoints (ECR, CloudWatch Logs) and an S3 gateway endpoint, so tasks without a
    # public IP can pull their image and write logs; off when the subnets already have a NAT.
    vpc_endpoints: bool


@dataclass(frozen=True)
class RuntimeDefaults:
    """The sizes a stack gets when its config says nothing."""

    cpu: int
    memory: int
    desired_tasks: int
    min_tasks: int
    max_tasks: int
    log_retention_days: int


DEFAULTS: Final = {
    NONPROD: RuntimeDefaults(
        cpu=256, memory=512, desired_tasks=1, min_tasks=1, max_tasks=2, log_retention_days=14
    ),
    PROD: RuntimeDefaults(
        cpu=512, memory=1024, desired_tasks=2, min_tasks=2, max_tasks=6, log_retention_days=90
    ),
}
DEFAULT_REQUESTS_PER_TARGET: Final = 1000
DEFAULT_CPU_TARGET_PERCENT: Final = 60


def _key(key: str) -> str:
    return f"config {PROJECT}:{key}"


def _one_of(config: ConfigSource, key: str, default: int, allowed: tuple[int, ...]) -> int:
    value = read_integer(config, key, default, min(allowed), max(allowed))
    if value not in allowed:
        raise StackConfigError(
            f"{_key(key)} is {value}: not allowed; expected one of {', '.join(map(str, allowed))}"
        )
    return value


def _subnet_ids(config: ConfigSource, key: str) -> tuple[str, ...] | None:
    """A YAML list or comma-separated text of subnet ids; at least two, for two zones."""
    raw = config.get(key)
    if raw is None:
        return None
    text = str(raw).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise StackConfigError(f"{_key(key)} is {raw!r}: expected a list of subnet ids")
    else:
        items = [item for item in text.split(",") if item.strip()]
    ids = tuple(item.strip() for item in items)
    bad = [subnet for subnet in ids if not _SUBNET_ID.fullmatch(subnet)]
    if bad:
        raise StackConfigError(
            f"{_key(key)} has {', '.join(map(repr, bad))}: expected subnet ids such as "
            "subnet-0123456789abcdef0"
        )
    if len(set(ids)) < 2:
        raise StackConfigError(
            f"{_key(key)} names {len(set(ids))} subnet(s): the load balancer needs at "
            "least two, in two availability zones"
        )
    return ids


def _network(
    config: ConfigSource,
) -> tuple[str | None, tuple[str, ...] | None, tuple[str, ...] | None]:
    raw_vpc = config.get("vpcId")
    subnets = _subnet_ids(config, "subnetIds")
    balancer_subnets = _subnet_ids(config, "loadBalancerSubnetIds")
    if balancer_subnets is not None and subnets is None:
        raise StackConfigError(
            f"{_key('loadBalancerSubnetIds')} needs {_key('vpcId')} and {_key('subnetIds')}: "
            "the load balancer's public subnets belong to your own VPC"
        )
    if (raw_vpc is None) != (subnets is None):
        raise StackConfigError(
            f"{_key('vpcId')} and {_key('subnetIds')} go together: set both (your own VPC and "
            "its subnets) or neither (the default VPC)"
        )
    if raw_vpc is None:
        return None, None, None
    vpc_id = str(raw_vpc).strip()
    if not _VPC_ID.fullmatch(vpc_id):
        raise StackConfigError(
            f"{_key('vpcId')} is {raw_vpc!r}: expected a VPC id such as vpc-0123456789abcdef0"
        )
    return vpc_id, subnets, balancer_subnets or subnets


def _certificate_arn(config: ConfigSource) -> str | None:
    raw = config.get("certificateArn")
    if raw is None or not str(raw).strip():
        return None
    value = str(raw).strip()
    if not _CERTIFICATE_ARN.fullmatch(value):
        raise StackConfigError(
            f"{_key('certificateArn')} is {raw!r}: expected an ACM certificate ARN such as "
            "arn:aws:acm:eu-west-2:123456789012:certificate/<uuid>"
        )
    return value


def read_runtime_settings(config: ConfigSource, stack: str) -> RuntimeSettings | None:
    """Validate the stack's runtime config; None when the stack is registry only."""
    if stack not in STACKS:
        raise StackConfigError(f"stack {stack!r} is not known: expected one of {', '.join(STACKS)}")
    if read_boolean(config, "registryOnly", default=False):
        return None
    defaults = DEFAULTS[stack]
    cpu = _one_of(config, "taskCpu", defaults.cpu, tuple(FARGATE_SIZES))
    memory = read_integer(config, "taskMemory", defaults.memory, 512, 122880)
    if memory not in FARGATE_SIZES[cpu]:
        allowed = FARGATE_SIZES[cpu]
        raise StackConfigError(
            f"{_key('taskMemory')} is {memory}: Fargate does not run {cpu} CPU units with that "
            f"much memory; with taskCpu {cpu} use {allowed[0]} to {allowed[-1]} "
            f"({', '.join(map(str, allowed[:4]))}{', ...' if len(allowed) > 4 else ''})"
        )
    low = PROD_MIN_TASKS if stack == PROD else 1
    min_tasks = read_integer(config, "minTasks", defaults.min_tasks, low, MAX_TASKS_LIMIT)
    max_tasks = read_integer(config, "maxTasks", defaults.max_tasks, low, MAX_TASKS_LIMIT)
    desired = read_integer(config, "desiredTasks", defaults.desired_tasks, low, MAX_TASKS_LIMIT)
    if not min_tasks <= desired <= max_tasks:
        raise StackConfigError(
            f"{_key('minTasks')} {min_tasks}, {_key('desiredTasks')} {desired} and "
            f"{_key('maxTasks')} {max_tasks}: expected minTasks <= desiredTasks <= maxTasks"
        )
    vpc_id, subnet_ids, load_balancer_subnet_ids = _network(config)
    return RuntimeSettings(
        cpu=cpu,
        memory=memory,
        desired_tasks=desired,
        min_tasks=min_tasks,
        max_tasks=max_tasks,
        requests_per_target=read_integer(
            config, "requestsPerTarget", DEFAULT_REQUESTS_PER_TARGET, 10, 100_000
        ),
        cpu_target_percent=read_integer(
            config, "cpuTargetPercent", DEFAULT_CPU_TARGET_PERCENT, 10, 90
        ),
        log_retention_days=_one_of(
            config, "logRetentionDays", defaults.log_retention_days, LOG_RETENTION_DAYS
        ),
        certificate_arn=_certificate_arn(config),
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        load_balancer_subnet_ids=load_balancer_subnet_ids,
        vpc_endpoints=read_boolean(config, "vpcEndpoints", default=True),
    )
