"""Wire one stack's runtime: look up the network, build the ServiceRuntime, export its outputs.

The program entry calls `deploy_runtime` after the stack's image is known (nonprod: the image it
published; prod: its own repository at the promoted digest). The look-ups run here, not in the
component: the account id, and unless `vpcId`/`subnetIds` are configured, the default VPC, its
default subnets (one per availability zone) and its route tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.components.github_oidc import GithubOidc
from infra.components.repository import ImageRepository
from infra.components.runtime import ServiceRuntime, ServiceRuntimeArgs
from infra.errors import StackConfigError
from infra.runtime_policies import roll_service_policy, runtime_base_name
from infra.runtime_settings import RuntimeSettings
from infra.settings import NONPROD, PROD

# Tasks, load balancer and endpoints use this many default subnets (zones): two zones survive
# the loss of one, and every extra zone adds an endpoint network interface per endpoint.
DEFAULT_ZONES: Final = 2
REGISTRY_ONLY: Final = "registry-only"
ECS_FARGATE: Final = "ecs-fargate"


@dataclass(frozen=True)
class Network:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    load_balancer_subnet_ids: pulumi.Input[Sequence[str]]
    route_table_ids: pulumi.Input[Sequence[str]]


def pick_default_subnets(subnet_ids: Sequence[str], zones: int = DEFAULT_ZONES) -> list[str]:
    """The first `zones` default subnets by id (one per zone); fail when there are fewer."""
    if len(subnet_ids) < zones:
        raise StackConfigError(
            f"the default VPC has {len(subnet_ids)} default subnet(s), the runtime needs {zones} "
            "(one per availability zone, for the load balancer and for tasks in two zones); "
            "set predict-buy:vpcId and predict-buy:subnetIds, or predict-buy:registryOnly true"
        )
    return sorted(subnet_ids)[:zones]


def look_up_network(settings: RuntimeSettings) -> Network:
    """The configured VPC and subnets, or the default VPC's default subnets."""
    if settings.vpc_id is not None and settings.subnet_ids is not None:
        vpc_id: pulumi.Input[str] = settings.vpc_id
        subnet_ids: pulumi.Input[Sequence[str]] = list(settings.subnet_ids)
        balancer_subnet_ids: pulumi.Input[Sequence[str]] = list(
            settings.load_balancer_subnet_ids or settings.subnet_ids
        )
    else:
        vpc_id = aws.ec2.get_vpc_output(default=True).id
        subnet_ids = aws.ec2.get_subnets_output(
            filters=[
                aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id]),
                aws.ec2.GetSubnetsFilterArgs(name="default-for-az", values=["true"]),
            ]
        ).ids.apply(pick_default_subnets)
        balancer_subnet_ids = subnet_ids
    route_table_ids = aws.ec2.get_route_tables_output(vpc_id=vpc_id).ids
    return Network(
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        load_balancer_subnet_ids=balancer_subnet_ids,
        route_table_ids=route_table_ids,
    )


def deploy_runtime(
    stack: str,
    name_prefix: str,
    region: str,
    repository: ImageRepository,
    image_ref: pulumi.Input[str],
    settings: RuntimeSettings | None,
) -> ServiceRuntime | None:
    """Create the stack's runtime (None when registry only) and export what clients need."""
    pulumi.export("runtime", REGISTRY_ONLY if settings is None else ECS_FARGATE)
    if settings is None:
        return None
    network = look_up_network(settings)
    runtime = ServiceRuntime(
        f"{stack}-runtime",
        ServiceRuntimeArgs(
            base_name=runtime_base_name(name_prefix, stack),
            region=region,
            account_id=aws.get_caller_identity_output().account_id,
            image_ref=image_ref,
            repository_arn=repository.arn,
            vpc_id=network.vpc_id,
            subnet_ids=network.subnet_ids,
            load_balancer_subnet_ids=network.load_balancer_subnet_ids,
            route_table_ids=network.route_table_ids,
            cpu=settings.cpu,
            memory=settings.memory,
            desired_tasks=settings.desired_tasks,
            min_tasks=settings.min_tasks,
            max_tasks=settings.max_tasks,
            requests_per_target=settings.requests_per_target,
            cpu_target_percent=settings.cpu_target_percent,
            log_retention_days=settings.log_retention_days,
            certificate_arn=settings.certificate_arn,
            vpc_endpoints=settings.vpc_endpoints,
        ),
    )
    pulumi.export("serviceUrl", runtime.service_url)
    pulumi.export("runningImageRef", runtime.image_ref)
    pulumi.export("runningImageDigest", runtime.image_digest)
    pulumi.export("clusterName", runtime.cluster_name)
    pulumi.export("serviceName", runtime.service_name)
    return runtime


def grant_runtime_access(oidc: GithubOidc, name_prefix: str, region: str) -> None:
    """The CI roles' runtime rights, as policies of their own beside the roles' registry ones.

    deploy: roll nonprod's service; promote: roll prod's. (The preview role's runtime reads are
    part of its one policy, infra/components/github_oidc.py, with every other refresh read.)
    """
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(parent=oidc)
    ).account_id
    grants = {
        "deploy": (
            oidc.deploy_role,
            account_id.apply(
                lambda account: roll_service_policy(
                    account, region, runtime_base_name(name_prefix, NONPROD)
                )
            ),
        ),
        "promote": (
            oidc.promote_role,
            account_id.apply(
                lambda account: roll_service_policy(
                    account, region, runtime_base_name(name_prefix, PROD)
                )
            ),
        ),
    }
    for purpose, (role, policy) in grants.items():
        aws.iam.RolePolicy(
            f"github-{purpose}-runtime-permissions",
            # A plain name, as the roles' other policies have, so the policy rules check it too.
            name=f"{name_prefix}-github-{purpose}-runtime-permissions",
            role=role.id,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=oidc),
        )
