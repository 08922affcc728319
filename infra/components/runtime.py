"""The service's runtime: ECS Fargate tasks running one image digest behind a load balancer.

Children: a cluster, a log group, the task execution role (pull from the stack's repository,
write its log group) and a task role without permissions, security groups (internet -> load
balancer -> tasks, nothing else reaches the tasks), an Application Load Balancer whose target
group checks /readyz, an HTTPS listener when a certificate is given (HTTP then redirects to it),
otherwise an HTTP one, the task definition (the image by digest, the Dockerfile's HEALTHCHECK),
the service (no public IP; rolling, minimum healthy 100%, circuit breaker with rollback; the
update waits for steady state, so a failed deploy fails `pulumi up`), target-tracking autoscaling
on requests per target and CPU, and (optionally) the VPC endpoints that let tasks without a
public IP pull their image and write logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationArgs as TrackingArgs,
)
from pulumi_aws.appautoscaling import (
    PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs as MetricArgs,
)

from infra.errors import RuntimeImageError
from infra.runtime_policies import (
    ecs_tasks_trust_policy,
    execution_role_name,
    execution_role_policy,
    task_role_name,
)

CONTAINER_NAME: Final = "predict_buy_app"
CONTAINER_PORT: Final = 8000
READINESS_PATH: Final = "/readyz"
# service/Dockerfile's HEALTHCHECK, as ECS runs it (ECS ignores the image's own HEALTHCHECK);
# tests/infra/test_runtime.py checks the two agree.
CONTAINER_HEALTH_CHECK: Final = {
    "command": ["CMD", "python", "-m", "service.healthcheck"],
    "interval": 15,
    "timeout": 3,
    "startPeriod": 10,
    "retries": 3,
}
# Requests in flight finish within this many seconds when a task is replaced.
DEREGISTRATION_DELAY_SECONDS: Final = 30
# Seconds ECS waits after SIGTERM before SIGKILL: the service answers /readyz 503 and drains its
# requests in flight (PREDICT_BUY_DRAIN_TIMEOUT_S, 10 s) and then uvicorn's graceful shutdown
# (10 s) runs; a test keeps this above their sum.
STOP_TIMEOUT_SECONDS: Final = 30
TLS_POLICY: Final = "ELBSecurityPolicy-TLS13-1-2-2021-06"
SCALE_OUT_COOLDOWN_SECONDS: Final = 60
SCALE_IN_COOLDOWN_SECONDS: Final = 300
ANYWHERE_IPV4: Final = "0.0.0.0/0"
HTTPS_PORT: Final = 443
HTTP_PORT: Final = 80
_DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ServiceRuntimeArgs:
    # `<prefix>-<stack>`: the cluster's, the task family's and the log group's name.
    base_name: str
    region: str
    account_id: pulumi.Input[str]
    # `repository@sha256:...`: the only form accepted (a tag could move under the service).
    image_ref: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    # The tasks' (and interface endpoints') subnets, one per availability zone.
    subnet_ids: pulumi.Input[Sequence[str]]
    # The internet-facing load balancer's subnets (public ones; the default VPC's are).
    load_balancer_subnet_ids: pulumi.Input[Sequence[str]]
    # The VPC's route tables, for the S3 gateway endpoint (image layers live in S3).
    route_table_ids: pulumi.Input[Sequence[str]]
    cpu: int
    memory: int
    desired_tasks: int
    min_tasks: int
    max_tasks: int
    requests_per_target: int
    cpu_target_percent: int
    log_retention_days: int
    certificate_arn: str | None
    vpc_endpoints: bool


def check_image_ref(image_ref: str) -> str:
    """The reference itself, if it pins a digest; raise otherwise."""
    if not _DIGEST_REF.fullmatch(str(image_ref)):
        raise RuntimeImageError(
            f"the runtime would run image {image_ref!r}; a task runs only a digest reference "
            "(<repository>@sha256:<64 hex>), never a tag, so what runs is what was published"
        )
    return image_ref


def image_digest(image_ref: str) -> str:
    """The `sha256:...` part of a digest reference."""
    return check_image_ref(image_ref).rsplit("@", 1)[1]


def container_definitions(image_ref: str, log_group: str, region: str) -> str:
    """The task's one container: the image by digest, port 8000, health check, awslogs."""
    definition: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": check_image_ref(image_ref),
        "essential": True,
        "portMappings": [{"containerPort": CONTAINER_PORT, "protocol": "tcp"}],
        "healthCheck": CONTAINER_HEALTH_CHECK,
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": CONTAINER_NAME,
            },
        },
    }
    return json.dumps([definition], sort_keys=True)


def running_image(definitions: str) -> str:
    """The image the task definition runs, read back from its container definitions."""
    [container] = [c for c in json.loads(definitions) if c["name"] == CONTAINER_NAME]
    return str(container["image"])


class ServiceRuntime(pulumi.ComponentResource):
    """One stack's ECS Fargate service behind an Application Load Balancer."""

    cluster: aws.ecs.Cluster
    log_group: aws.cloudwatch.LogGroup
    execution_role: aws.iam.Role
    task_role: aws.iam.Role
    load_balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    task_definition: aws.ecs.TaskDefinition
    service: aws.ecs.Service
    scaling_target: aws.appautoscaling.Target
    service_url: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    image_digest: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceRuntimeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:runtime:ServiceRuntime", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=args.base_name,
            # Container Insights is billed per metric: off by default, turn on when needed.
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="disabled")],
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{args.base_name}/{CONTAINER_NAME}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )

        trust = pulumi.Output.from_input(args.account_id).apply(ecs_tasks_trust_policy)
        self.execution_role = aws.iam.Role(
            f"{name}-execution-role",
            name=execution_role_name(args.base_name),
            description=f"ECS starts {args.base_name} tasks: pull its image, write its logs",
            assume_role_policy=trust,
            opts=child,
        )
        execution_policy = aws.iam.RolePolicy(
            f"{name}-execution-permissions",
            role=self.execution_role.id,
            policy=pulumi.Output.all(args.repository_arn, self.log_group.arn).apply(
                lambda values: execution_role_policy(values[0], values[1])
            ),
            opts=child,
        )
        # The service needs no AWS API: its role exists so tasks never borrow another one.
        self.task_role = aws.iam.Role(
            f"{name}-task-role",
            name=task_role_name(args.base_name),
            description=f"{args.base_name} service code: no permissions",
            assume_role_policy=trust,
            opts=child,
        )

        https = args.certificate_arn is not None
        listen_ports = [HTTP_PORT, HTTPS_PORT] if https else [HTTP_PORT]
        alb_group = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            description=f"{args.base_name} load balancer: HTTP(S) in, the tasks' port out",
            vpc_id=args.vpc_id,
            opts=child,
        )
        task_group = aws.ec2.SecurityGroup(
            f"{name}-tasks-sg",
            description=f"{args.base_name} tasks: only the load balancer reaches them",
            vpc_id=args.vpc_id,
            opts=child,
        )
        for port in listen_ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb_group.id,
                description=f"clients on port {port}",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=ANYWHERE_IPV4,
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out",
            security_group_id=alb_group.id,
            description="to the tasks' port only",
            ip_protocol="tcp",
            from_port=CONTAINER_PORT,
            to_port=CONTAINER_PORT,
            referenced_security_group_id=task_group.id,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-tasks-in",
            security_group_id=task_group.id,
            description="from the load balancer only",
            ip_protocol="tcp",
            from_port=CONTAINER_PORT,
            to_port=CONTAINER_PORT,
            referenced_security_group_id=alb_group.id,
            opts=child,
        )
        # HTTPS out, for ECR, S3 (layers) and CloudWatch Logs: without a public IP this reaches
        # only what the VPC routes to (the endpoints below, or a NAT gateway of your own).
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-tasks-out",
            security_group_id=task_group.id,
            description="HTTPS to ECR, S3 and CloudWatch Logs",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            cidr_ipv4=ANYWHERE_IPV4,
            opts=child,
        )
        endpoints = self._vpc_endpoints(name, args, task_group) if args.vpc_endpoints else []

        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_group.id],
            subnets=args.load_balancer_subnet_ids,
            drop_invalid_header_fields=True,
            idle_timeout=60,
            opts=child,
        )
        self.target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            port=CONTAINER_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                path=READINESS_PATH,
                protocol="HTTP",
                port="traffic-port",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
            opts=child,
        )
        self.listeners = self._listeners(name, args.certificate_arn)

        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=args.base_name,
            cpu=str(args.cpu),
            memory=str(args.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            container_definitions=pulumi.Output.all(args.image_ref, self.log_group.name).apply(
                lambda values: container_definitions(values[0], values[1], args.region)
            ),
            opts=child,
        )
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=CONTAINER_NAME,
            cluster=self.cluster.arn,
            task_definition=self.task_definition.arn,
            desired_count=args.desired_tasks,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.subnet_ids,
                security_groups=[task_group.id],
                assign_public_ip=False,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=self.target_group.arn,
                    container_name=CONTAINER_NAME,
                    container_port=CONTAINER_PORT,
                )
            ],
            health_check_grace_period_seconds=30,
            deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            ),
            wait_for_steady_state=True,
            availability_zone_rebalancing="ENABLED",
            enable_execute_command=False,
            propagate_tags="SERVICE",
            opts=pulumi.ResourceOptions(
                parent=self,
                # Autoscaling owns the task count once the service exists.
                ignore_changes=["desiredCount"],
                # A target group must belong to a load balancer before a service can use it;
                # the tasks need their permissions and endpoints before they can start.
                depends_on=[*self.listeners, execution_policy, *endpoints],
            ),
        )
        self.scaling_target = self._autoscaling(name, args)

        scheme = "https" if https else "http"
        self.service_url = pulumi.Output.concat(scheme, "://", self.load_balancer.dns_name)
        self.image_ref = self.task_definition.container_definitions.apply(running_image)
        self.image_digest = self.image_ref.apply(image_digest)
        self.cluster_name = self.cluster.name
        self.service_name = self.service.name

        self.register_outputs(
            {
                "serviceUrl": self.service_url,
                "imageRef": self.image_ref,
                "imageDigest": self.image_digest,
                "clusterName": self.cluster_name,
                "serviceName": self.service_name,
            }
        )

    def _listeners(self, name: str, certificate_arn: str | None) -> list[aws.lb.Listener]:
        child = pulumi.ResourceOptions(parent=self)
        forward = aws.lb.ListenerDefaultActionArgs(
            type="forward", target_group_arn=self.target_group.arn
        )
        if certificate_arn is None:
            return [
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=self.load_balancer.arn,
                    port=HTTP_PORT,
                    protocol="HTTP",
                    default_actions=[forward],
                    opts=child,
                )
            ]
        https = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=self.load_balancer.arn,
            port=HTTPS_PORT,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=certificate_arn,
            default_actions=[forward],
            opts=child,
        )
        redirect = aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.load_balancer.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"
                    ),
                )
            ],
            opts=child,
        )
        return [https, redirect]

    def _vpc_endpoints(
        self, name: str, args: ServiceRuntimeArgs, task_group: aws.ec2.SecurityGroup
    ) -> list[aws.ec2.VpcEndpoint]:
        """ECR API, ECR registry and Logs interface endpoints, and the S3 gateway endpoint."""
        child = pulumi.ResourceOptions(parent=self)
        endpoint_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            description=f"{args.base_name} VPC endpoints: HTTPS from the tasks only",
            vpc_id=args.vpc_id,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-in",
            security_group_id=endpoint_group.id,
            description="HTTPS from the tasks",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            referenced_security_group_id=task_group.id,
            opts=child,
        )
        created = [
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=args.vpc_id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=args.subnet_ids,
                security_group_ids=[endpoint_group.id],
                opts=child,
            )
            for service in ("ecr.api", "ecr.dkr", "logs")
        ]
        created.append(
            aws.ec2.VpcEndpoint(
                f"{name}-s3",
                vpc_id=args.vpc_id,
                service_name=f"com.amazonaws.{args.region}.s3",
                vpc_endpoint_type="Gateway",
                route_table_ids=args.route_table_ids,
                opts=child,
            )
        )
        return created

    def _autoscaling(self, name: str, args: ServiceRuntimeArgs) -> aws.appautoscaling.Target:
        child = pulumi.ResourceOptions(parent=self)
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", self.service.name),
            min_capacity=args.min_tasks,
            max_capacity=args.max_tasks,
            opts=child,
        )
        policies = {
            "requests": MetricArgs(
                predefined_metric_type="ALBRequestCountPerTarget",
                resource_label=pulumi.Output.concat(
                    self.load_balancer.arn_suffix, "/", self.target_group.arn_suffix
                ),
            ),
            "cpu": MetricArgs(predefined_metric_type="ECSServiceAverageCPUUtilization"),
        }
        targets = {"requests": args.requests_per_target, "cpu": args.cpu_target_percent}
        for metric, specification in policies.items():
            aws.appautoscaling.Policy(
                f"{name}-scale-on-{metric}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=TrackingArgs(
                    target_value=targets[metric],
                    predefined_metric_specification=specification,
                    scale_out_cooldown=SCALE_OUT_COOLDOWN_SECONDS,
                    scale_in_cooldown=SCALE_IN_COOLDOWN_SECONDS,
                ),
                opts=child,
            )
        return target
