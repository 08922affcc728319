"""Both stacks' ECS Fargate runtime under a mocked engine: what runs, how it deploys and scales."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from infra.components.runtime import CONTAINER_HEALTH_CHECK, check_image_ref, container_definitions
from infra.errors import RuntimeImageError
from service.__main__ import uvicorn_options
from service.core.config import Settings
from tests.conftest import REPO_ROOT
from tests.infra.conftest import (
    NONPROD_CONFIG,
    NONPROD_DIGEST,
    NONPROD_URL,
    PROD_CONFIG,
    PROD_URL,
    SOURCE_OUTPUTS,
    RunStack,
    StackRun,
)
from tests.infra.program_runner import ACCOUNT, REGION
from tests.infra.runtime_mocks import (
    DEFAULT_SUBNETS,
    DEFAULT_VPC,
    GET_SUBNETS,
    GET_VPC,
    ROUTE_TABLES,
    load_balancer_dns,
)

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/12345678-1234-1234-1234-123456789012"
TWO_DEFAULT_SUBNETS = sorted(DEFAULT_SUBNETS)[:2]


def container(run: StackRun) -> dict[str, Any]:
    [definition] = json.loads(run.one(TASK_DEFINITION)["inputs"]["containerDefinitions"])
    return definition


def named(run: StackRun, resource_type: str, suffix: str) -> dict[str, Any]:
    [found] = [r for r in run.of_type(resource_type) if r["name"].endswith(suffix)]
    return found


def test_nonprod_runs_the_image_it_published(nonprod_run: StackRun) -> None:
    # given / when the nonprod program ran
    image_ref = nonprod_run.value("imageRef")

    # then its one task runs exactly the published digest reference, and says so
    assert re.fullmatch(rf"{re.escape(NONPROD_URL)}@sha256:[0-9a-f]{{64}}", image_ref), image_ref
    assert container(nonprod_run)["image"] == image_ref
    assert nonprod_run.value("runningImageRef") == image_ref
    assert nonprod_run.value("runningImageDigest") == nonprod_run.value("imageDigest")
    assert nonprod_run.value("runtime") == "ecs-fargate"


def test_prod_runs_its_own_repository_at_the_promoted_digest(prod_run: StackRun) -> None:
    # given / when the prod program promoted nonprod's digest
    expected = f"{PROD_URL}@{NONPROD_DIGEST}"

    # then prod's tasks run prod's copy, at nonprod's digest (never nonprod's repository)
    assert prod_run.value("imageRef") == expected
    assert container(prod_run)["image"] == expected
    assert prod_run.value("runningImageRef") == expected
    assert prod_run.value("runningImageDigest") == NONPROD_DIGEST


def test_promoting_another_digest_rolls_the_service_and_rollback_restores(
    run_stack: RunStack,
) -> None:
    # given nonprod publishes 0.2.0, then prod rolls back to 0.1.0 (a digest it already holds)
    newer = "sha256:" + "02" * 32
    earlier = "sha256:" + "01" * 32
    outputs = {**SOURCE_OUTPUTS, "version": "0.2.0", "imageDigest": newer}

    # when
    promoted = run_stack(
        "prod", config={**PROD_CONFIG, "predict-buy:version": "0.2.0"}, source_outputs=outputs
    )
    rolled_back = run_stack(
        "prod",
        config={**PROD_CONFIG, "predict-buy:rollback": "true"},
        source_outputs=outputs,
        rollback_digest=earlier,
    )

    # then the task definition (and so the service) follows the digest prod holds
    assert container(promoted)["image"] == f"{PROD_URL}@{newer}"
    assert container(rolled_back)["image"] == f"{PROD_URL}@{earlier}"
    assert rolled_back.value("runningImageDigest") == earlier
    for run in (promoted, rolled_back):
        service = run.one(SERVICE)["outputs"]
        assert service["taskDefinition"] == run.one(TASK_DEFINITION)["outputs"]["arn"]


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_deployments_are_safe(stack: str, nonprod_run: StackRun, prod_run: StackRun) -> None:
    # given / when
    service = {"nonprod": nonprod_run, "prod": prod_run}[stack].one(SERVICE)["inputs"]

    # then a deploy keeps full capacity, rolls back by itself and fails `pulumi up` on failure
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["deploymentMinimumHealthyPercent"] == 100
    assert service["deploymentMaximumPercent"] == 200
    assert service["waitForSteadyState"] is True, "a failed deploy must fail pulumi up"
    assert service["deploymentController"] == {"type": "ECS"}, "rolling updates"
    assert service["launchType"] == "FARGATE"


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_tasks_have_no_public_ip_and_only_the_load_balancer_reaches_them(
    stack: str, nonprod_run: StackRun, prod_run: StackRun
) -> None:
    # given
    run = {"nonprod": nonprod_run, "prod": prod_run}[stack]
    network = run.one(SERVICE)["inputs"]["networkConfiguration"]
    alb_group = named(run, SECURITY_GROUP, "-alb-sg")["id"]
    task_group = named(run, SECURITY_GROUP, "-tasks-sg")["id"]

    # then no public IP, tasks in two default subnets, and their group admits the ALB only
    assert network["assignPublicIp"] is False
    assert network["subnets"] == TWO_DEFAULT_SUBNETS
    assert network["securityGroups"] == [task_group]
    into_tasks = [
        r["inputs"] for r in run.of_type(INGRESS) if r["inputs"]["securityGroupId"] == task_group
    ]
    assert into_tasks == [
        {
            "securityGroupId": task_group,
            "description": "from the load balancer only",
            "ipProtocol": "tcp",
            "fromPort": 8000,
            "toPort": 8000,
            "referencedSecurityGroupId": alb_group,
        }
    ], into_tasks
    out_of_alb = [
        r["inputs"] for r in run.of_type(EGRESS) if r["inputs"]["securityGroupId"] == alb_group
    ]
    assert [(e["fromPort"], e.get("referencedSecurityGroupId")) for e in out_of_alb] == [
        (8000, task_group)
    ], "the load balancer may only reach the tasks' port"
    assert run.one(LOAD_BALANCER)["inputs"]["subnets"] == TWO_DEFAULT_SUBNETS
    assert run.one(LOAD_BALANCER)["inputs"]["internal"] is False


def test_the_default_vpc_is_looked_up(nonprod_run: StackRun) -> None:
    # given / when
    tokens = [call["token"] for call in nonprod_run.calls]

    # then the default VPC and its default subnets were looked up, and used
    assert GET_VPC in tokens and GET_SUBNETS in tokens
    assert nonprod_run.one(TARGET_GROUP)["inputs"]["vpcId"] == DEFAULT_VPC
    s3 = named(nonprod_run, ENDPOINT, "-s3")["inputs"]
    assert s3["vpcEndpointType"] == "Gateway" and s3["routeTableIds"] == list(ROUTE_TABLES)


def test_health_checks(nonprod_run: StackRun) -> None:
    # given / when
    group = nonprod_run.one(TARGET_GROUP)["inputs"]

    # then the load balancer routes to a task only while /readyz answers 200
    assert group["healthCheck"]["path"] == "/readyz"
    assert group["healthCheck"]["matcher"] == "200"
    assert group["healthCheck"]["enabled"] is True
    assert group["targetType"] == "ip" and group["port"] == 8000
    assert container(nonprod_run)["healthCheck"] == CONTAINER_HEALTH_CHECK


def dockerfile_healthcheck() -> dict[str, Any]:
    """service/Dockerfile's HEALTHCHECK, in ECS's container health check form."""
    text = (REPO_ROOT / "service" / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [row for row in text.splitlines() if row.startswith("HEALTHCHECK ")]
    options = dict(re.findall(r"--([a-z-]+)=(\d+)s?", line))
    command = json.loads(line.split(" CMD ", 1)[1])
    return {
        "command": ["CMD", *command],
        "interval": int(options["interval"]),
        "timeout": int(options["timeout"]),
        "startPeriod": int(options["start-period"]),
        "retries": int(options["retries"]),
    }


def test_tasks_get_the_time_to_drain_before_they_are_killed(nonprod_run: StackRun) -> None:
    # given the service's own shutdown: drain the requests in flight, then uvicorn's grace
    settings = Settings()
    shutdown_seconds = (
        settings.drain_timeout_s + uvicorn_options(settings)["timeout_graceful_shutdown"]
    )

    # then ECS waits longer than that between SIGTERM and SIGKILL
    stop_timeout = container(nonprod_run)["stopTimeout"]
    assert stop_timeout > shutdown_seconds, f"{stop_timeout} s would kill a draining task"
    assert stop_timeout <= 120, "Fargate allows at most 120 s"


def test_container_health_check_is_the_dockerfiles() -> None:
    # given / when / then ECS runs the same check the image declares (ECS ignores HEALTHCHECK)
    assert dockerfile_healthcheck() == CONTAINER_HEALTH_CHECK


@pytest.mark.parametrize(
    ("stack", "minimum", "maximum", "size"),
    [("nonprod", 1, 2, ("256", "512")), ("prod", 2, 6, ("512", "1024"))],
)
def test_autoscaling_bounds_and_policies(
    stack: str,
    minimum: int,
    maximum: int,
    size: tuple[str, str],
    nonprod_run: StackRun,
    prod_run: StackRun,
) -> None:
    # given
    run = {"nonprod": nonprod_run, "prod": prod_run}[stack]
    target = run.one(SCALING_TARGET)["inputs"]
    policies = {
        p["name"].rsplit("-", 1)[-1]: p["inputs"]["targetTrackingScalingPolicyConfiguration"]
        for p in run.of_type(SCALING_POLICY)
    }
    balancer = run.one(LOAD_BALANCER)["outputs"]["arnSuffix"]
    group = run.one(TARGET_GROUP)["outputs"]["arnSuffix"]

    # then the service scales between the stack's bounds, on requests per target and on CPU
    assert (target["minCapacity"], target["maxCapacity"]) == (minimum, maximum)
    assert target["resourceId"] == f"service/ce7-grp-1-{stack}/predict_buy_app"
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    assert run.one(SERVICE)["inputs"]["desiredCount"] == minimum
    requests = policies["requests"]["predefinedMetricSpecification"]
    assert requests == {
        "predefinedMetricType": "ALBRequestCountPerTarget",
        "resourceLabel": f"{balancer}/{group}",
    }
    assert policies["requests"]["targetValue"] == 1000
    cpu = policies["cpu"]["predefinedMetricSpecification"]
    assert cpu == {"predefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert policies["cpu"]["targetValue"] == 60
    definition = run.one(TASK_DEFINITION)["inputs"]
    assert (definition["cpu"], definition["memory"]) == size


@pytest.mark.parametrize(
    ("stack", "repository"),
    [
        ("nonprod", "ce7-grp-1/nonprod/predict_buy_app"),
        ("prod", "ce7-grp-1/prod/predict_buy_app"),
    ],
)
def test_execution_role_pulls_only_from_its_repository_and_writes_only_its_logs(
    stack: str, repository: str, nonprod_run: StackRun, prod_run: StackRun
) -> None:
    # given
    run = {"nonprod": nonprod_run, "prod": prod_run}[stack]
    policy = json.loads(named(run, ROLE_POLICY, "-execution-permissions")["inputs"]["policy"])
    log_group = run.one(LOG_GROUP)["outputs"]["arn"]
    grants = {tuple(s["Action"]): s["Resource"] for s in policy["Statement"]}

    # then
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert grants == {
        ("ecr:GetAuthorizationToken",): "*",
        (
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ): f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}",
        ("logs:CreateLogStream", "logs:PutLogEvents"): f"{log_group}:log-stream:*",
    }
    assert run.one(LOG_GROUP)["inputs"]["name"] == f"/ecs/ce7-grp-1-{stack}/predict_buy_app"
    definition = run.one(TASK_DEFINITION)["inputs"]
    execution = named(run, ROLE, "-execution-role")
    assert definition["executionRoleArn"] == execution["outputs"]["arn"]


def test_task_role_has_no_permissions_and_trusts_only_this_accounts_ecs(
    nonprod_run: StackRun,
) -> None:
    # given
    task_role = named(nonprod_run, ROLE, "-task-role")
    trust = json.loads(task_role["inputs"]["assumeRolePolicy"])

    # then no policy of any kind is attached to it
    attached = [
        p["name"]
        for p in nonprod_run.resources
        if p["type"].startswith("aws:iam/") and p["inputs"].get("role") == task_role["id"]
    ]
    assert attached == [], f"the task role must have no permissions, got {attached}"
    assert "managedPolicyArns" not in task_role["inputs"]
    assert "inlinePolicies" not in task_role["inputs"]
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    definition = nonprod_run.one(TASK_DEFINITION)["inputs"]
    assert definition["taskRoleArn"] == task_role["outputs"]["arn"]


def test_http_without_a_certificate(nonprod_run: StackRun) -> None:
    # given / when no certificateArn
    listener = nonprod_run.one(LISTENER)["inputs"]

    # then one HTTP listener forwards to the target group
    assert (listener["port"], listener["protocol"]) == (80, "HTTP")
    assert listener["defaultActions"] == [
        {"type": "forward", "targetGroupArn": nonprod_run.one(TARGET_GROUP)["outputs"]["arn"]}
    ]
    assert nonprod_run.value("serviceUrl") == f"http://{load_balancer_dns('nonprod-runtime-alb')}"


def test_https_with_a_certificate(run_stack: RunStack) -> None:
    # given
    config = {**NONPROD_CONFIG, "predict-buy:certificateArn": CERTIFICATE}

    # when
    run = run_stack("nonprod", config=config)

    # then HTTPS serves, HTTP redirects to it, and the load balancer admits both ports
    listeners = {r["inputs"]["port"]: r["inputs"] for r in run.of_type(LISTENER)}
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[443]["certificateArn"] == CERTIFICATE
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert listeners[80]["defaultActions"][0]["type"] == "redirect"
    assert listeners[80]["defaultActions"][0]["redirect"]["protocol"] == "HTTPS"
    ports = sorted(
        r["inputs"]["fromPort"] for r in run.of_type(INGRESS) if "cidrIpv4" in r["inputs"]
    )
    assert ports == [80, 443]
    assert run.value("serviceUrl").startswith("https://")


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_registry_only_creates_no_runtime(stack: str, run_stack: RunStack) -> None:
    # given
    default = NONPROD_CONFIG if stack == "nonprod" else PROD_CONFIG
    config = {**default, "predict-buy:registryOnly": "true"}

    # when
    run = run_stack(stack, config=config)

    # then the registry side is unchanged and nothing of the runtime exists
    assert run.error is None, run.error
    assert run.value("runtime") == "registry-only"
    assert "serviceUrl" not in run.exports
    assert run.value("imageRef")
    runtime_types = (SERVICE, TASK_DEFINITION, LOAD_BALANCER, SCALING_TARGET, ENDPOINT)
    assert not [r["name"] for r in run.resources if r["type"] in runtime_types]
    assert not [c for c in run.calls if c["token"] in (GET_VPC, GET_SUBNETS)]


def test_configured_subnets_replace_the_default_vpc(run_stack: RunStack) -> None:
    # given
    subnets = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    public = ["subnet-0fedcba9876543210", "subnet-0fedcba9876543211"]
    config = {
        **PROD_CONFIG,
        "predict-buy:vpcId": "vpc-0123456789abcdef0",
        "predict-buy:subnetIds": json.dumps(subnets),
        "predict-buy:loadBalancerSubnetIds": ",".join(public),
        "predict-buy:vpcEndpoints": "false",
    }

    # when
    run = run_stack("prod", config=config)

    # then the default VPC is not looked up, and no endpoints are created (the subnets' NAT serves)
    assert run.error is None, run.error
    assert not [c for c in run.calls if c["token"] in (GET_VPC, GET_SUBNETS)]
    assert run.one(SERVICE)["inputs"]["networkConfiguration"]["subnets"] == subnets
    assert run.one(LOAD_BALANCER)["inputs"]["subnets"] == public, "the ALB in the public subnets"
    assert run.one(TARGET_GROUP)["inputs"]["vpcId"] == "vpc-0123456789abcdef0"
    assert not run.of_type(ENDPOINT)


def test_endpoints_let_tasks_without_a_public_ip_pull_and_log(nonprod_run: StackRun) -> None:
    # given / when
    endpoints = {r["inputs"]["serviceName"]: r["inputs"] for r in nonprod_run.of_type(ENDPOINT)}
    endpoint_group = named(nonprod_run, SECURITY_GROUP, "-endpoints-sg")["id"]
    task_group = named(nonprod_run, SECURITY_GROUP, "-tasks-sg")["id"]

    # then
    assert sorted(endpoints) == [
        f"com.amazonaws.{REGION}.{name}" for name in ("ecr.api", "ecr.dkr", "logs", "s3")
    ]
    for name in ("ecr.api", "ecr.dkr", "logs"):
        endpoint = endpoints[f"com.amazonaws.{REGION}.{name}"]
        assert endpoint["privateDnsEnabled"] is True
        assert endpoint["subnetIds"] == TWO_DEFAULT_SUBNETS
        assert endpoint["securityGroupIds"] == [endpoint_group]
    [into_endpoints] = [
        r["inputs"]
        for r in nonprod_run.of_type(INGRESS)
        if r["inputs"]["securityGroupId"] == endpoint_group
    ]
    assert into_endpoints["referencedSecurityGroupId"] == task_group
    assert into_endpoints["fromPort"] == 443


def test_a_default_vpc_with_one_zone_is_refused(run_stack: RunStack) -> None:
    # given a default VPC with a single default subnet
    # when
    run = run_stack("nonprod", default_subnets=["subnet-0aaa000000000000a"])

    # then the stack fails, saying what to configure instead
    message = run.failure()
    assert "default VPC has 1 default subnet(s), the runtime needs 2" in message, message
    assert "predict-buy:subnetIds" in message and "predict-buy:registryOnly" in message


def test_bad_runtime_config_fails_naming_the_key(run_stack: RunStack) -> None:
    # given / when
    run = run_stack("prod", config={**PROD_CONFIG, "predict-buy:minTasks": "1"})

    # then
    assert "predict-buy:minTasks is 1: out of range; expected 2 to 50" in run.failure()
    assert run.error["type"] == "StackConfigError"
    assert not run.of_type(SERVICE)


def test_preview_plans_the_runtime_without_a_digest(run_stack: RunStack) -> None:
    # given / when a nonprod preview (nothing is built, so the digest is unknown)
    run = run_stack("nonprod", preview=True)

    # then the runtime is planned and its image is not known yet
    assert run.error is None, run.error
    assert run.one(SERVICE)["inputs"]["waitForSteadyState"] is True
    assert run.exports["runningImageRef"]["known"] is False


@pytest.mark.parametrize(
    "image",
    [
        f"{PROD_URL}:v0.1.0",
        f"{PROD_URL}@sha256:{'ab' * 31}",
        f"{PROD_URL}:v0.1.0@sha256",
        "",
    ],
    ids=["tag", "short-digest", "no-hex", "empty"],
)
def test_an_image_not_pinned_by_digest_is_refused(image: str) -> None:
    # given / when / then
    with pytest.raises(RuntimeImageError, match="never a tag"):
        container_definitions(image, "/ecs/x/predict_buy_app", REGION)
    assert check_image_ref(f"{PROD_URL}@{NONPROD_DIGEST}") == f"{PROD_URL}@{NONPROD_DIGEST}"


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_stack_files_show_the_runtime_switch_and_scale_settings(stack: str) -> None:
    # given
    config = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]

    # then the registry-only switch and the scale settings are visible in both stack files
    for key in ("registryOnly", "taskCpu", "taskMemory", "desiredTasks", "minTasks", "maxTasks"):
        assert f"predict-buy:{key}" in config, f"Pulumi.{stack}.yaml does not show {key}"
    assert config["predict-buy:registryOnly"] == "false"


def runtime_permissions(run: StackRun, purpose: str) -> list[dict[str, Any]]:
    [policy] = [
        p for p in run.of_type(ROLE_POLICY) if p["name"] == f"github-{purpose}-runtime-permissions"
    ]
    role = next(r for r in run.of_type(ROLE) if r["name"] == f"github-{purpose}")
    assert policy["inputs"]["role"] == role["id"], f"attached to another role than {purpose}"
    return json.loads(policy["inputs"]["policy"])["Statement"]


@pytest.mark.parametrize(("purpose", "stack"), [("deploy", "nonprod"), ("promote", "prod")])
def test_ci_roles_may_roll_only_their_stacks_service(
    purpose: str, stack: str, nonprod_oidc_run: StackRun
) -> None:
    # given the runtime rights of the role that runs `pulumi up --stack <stack>`
    statements = runtime_permissions(nonprod_oidc_run, purpose)
    by_sid = {s["Sid"]: s for s in statements}
    ecs = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    other = "prod" if stack == "nonprod" else "nonprod"

    # then it updates one service, passes its own two task roles to ECS only, nothing else
    assert all(s["Effect"] == "Allow" for s in statements)
    assert (
        by_sid["RollOwnService"]["Resource"] == f"{ecs}:service/ce7-grp-1-{stack}/predict_buy_app"
    )
    assert by_sid["RollOwnService"]["Action"] == ["ecs:DescribeServices", "ecs:UpdateService"]
    passing = by_sid["PassOwnTaskRoles"]
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/ce7-grp-1-{stack}-task-execution",
        f"arn:aws:iam::{ACCOUNT}:role/ce7-grp-1-{stack}-task",
    ]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    actions = {a for s in statements for a in s["Action"]}
    assert {a for a in actions if a.startswith("iam:")} == {"iam:PassRole"}, actions
    assert not [a for a in actions if a.endswith("*")], "no wildcard actions"
    assert f"-{other}" not in json.dumps(statements), f"{purpose} must not reach {other}"
    wildcard = {a for s in statements if s["Resource"] == "*" for a in s["Action"]}
    assert wildcard == {
        "ec2:DescribeRouteTables",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
    }, "only actions without resource-level permissions may use *"


def test_preview_role_reads_the_runtimes_and_only_reads(nonprod_oidc_run: StackRun) -> None:
    # given the preview role's one policy (pull requests and the drift check)
    [policy] = [
        p
        for p in nonprod_oidc_run.of_type(ROLE_POLICY)
        if p["inputs"].get("name") == "ce7-grp-1-github-preview-permissions"
    ]
    by_sid = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}

    # then it looks the network up and reads the runtimes back, and every action is a read
    runtime_reads = by_sid["ReadRuntimes"]
    assert runtime_reads["Resource"] == "*"
    assert {"ec2:DescribeRouteTables", "ec2:DescribeSubnets", "ec2:DescribeVpcs"} <= set(
        runtime_reads["Action"]
    )
    assert all(a.split(":")[1].startswith(("Describe", "List")) for a in runtime_reads["Action"]), (
        runtime_reads["Action"]
    )
    # and no runtime policy of its own: nothing beside that one policy
    assert not [
        p
        for p in nonprod_oidc_run.of_type(ROLE_POLICY)
        if p["name"] == "github-preview-runtime-permissions"
    ]
