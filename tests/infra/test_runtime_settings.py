"""Runtime config validation: per-stack defaults; errors name the key and what is allowed."""

from __future__ import annotations

import pytest
import yaml

from infra.errors import StackConfigError
from infra.runtime_settings import DEFAULTS, RuntimeSettings, read_runtime_settings
from tests.conftest import REPO_ROOT
from tests.infra.test_settings import DictConfig


def test_nonprod_defaults_are_small() -> None:
    # given no runtime config
    # when
    settings = read_runtime_settings(DictConfig({}), "nonprod")

    # then one small task, scaling to two, default VPC with endpoints, HTTP
    assert settings == RuntimeSettings(
        cpu=256,
        memory=512,
        desired_tasks=1,
        min_tasks=1,
        max_tasks=2,
        requests_per_target=1000,
        cpu_target_percent=60,
        log_retention_days=14,
        certificate_arn=None,
        vpc_id=None,
        subnet_ids=None,
        load_balancer_subnet_ids=None,
        vpc_endpoints=True,
    )


def test_prod_defaults_run_two_tasks_at_least() -> None:
    # given / when
    settings = read_runtime_settings(DictConfig({}), "prod")

    # then
    assert settings is not None
    assert (settings.min_tasks, settings.desired_tasks, settings.max_tasks) == (2, 2, 6)
    assert (settings.cpu, settings.memory, settings.log_retention_days) == (512, 1024, 90)


def test_registry_only_means_no_runtime() -> None:
    # given / when / then
    assert read_runtime_settings(DictConfig({"registryOnly": "true"}), "prod") is None
    assert read_runtime_settings(DictConfig({"registryOnly": "false"}), "prod") is not None


def test_own_network_and_https() -> None:
    # given
    certificate = (
        "arn:aws:acm:eu-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    )
    config = {
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": "subnet-0123456789abcdef0, subnet-0123456789abcdef1",
        "vpcEndpoints": "false",
        "certificateArn": certificate,
        "taskCpu": "1024",
        "taskMemory": "3072",
    }

    # when
    settings = read_runtime_settings(DictConfig(config), "nonprod")

    # then
    assert settings is not None
    assert settings.subnet_ids == ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
    assert settings.vpc_id == "vpc-0123456789abcdef0"
    assert settings.load_balancer_subnet_ids == settings.subnet_ids, "defaults to subnetIds"
    assert settings.vpc_endpoints is False
    assert settings.certificate_arn == certificate
    assert (settings.cpu, settings.memory) == (1024, 3072)


@pytest.mark.parametrize(
    ("stack", "config", "expected"),
    [
        ("nonprod", {"registryOnly": "maybe"}, "registryOnly is 'maybe': expected true or false"),
        ("nonprod", {"taskCpu": "300"}, "taskCpu is 300: not allowed; expected one of 256, 512"),
        ("nonprod", {"taskCpu": "lots"}, "taskCpu is 'lots': not a whole number"),
        ("nonprod", {"taskMemory": "4096"}, "with taskCpu 256 use 512 to 2048"),
        ("nonprod", {"minTasks": "3"}, "expected minTasks <= desiredTasks <= maxTasks"),
        ("nonprod", {"maxTasks": "500"}, "maxTasks is 500: out of range; expected 1 to 50"),
        ("prod", {"minTasks": "1"}, "minTasks is 1: out of range; expected 2 to 50"),
        ("prod", {"desiredTasks": "7"}, "expected minTasks <= desiredTasks <= maxTasks"),
        ("nonprod", {"logRetentionDays": "10"}, "logRetentionDays is 10: not allowed"),
        ("nonprod", {"cpuTargetPercent": "99"}, "cpuTargetPercent is 99: out of range"),
        ("nonprod", {"certificateArn": "my-cert"}, "certificateArn is 'my-cert': expected an ACM"),
        (
            "nonprod",
            {"vpcId": "vpc-0123456789abcdef0"},
            "vpcId and config predict-buy:subnetIds go together",
        ),
        (
            "nonprod",
            {"vpcId": "vpc-0123456789abcdef0", "subnetIds": "subnet-0123456789abcdef0"},
            "names 1 subnet(s): the load balancer needs at least two",
        ),
        (
            "nonprod",
            {"vpcId": "vpc-0123456789abcdef0", "subnetIds": "subnet-1,sub-2"},
            "subnetIds has 'subnet-1', 'sub-2': expected subnet ids",
        ),
        (
            "nonprod",
            {
                "vpcId": "my-vpc",
                "subnetIds": '["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]',
            },
            "vpcId is 'my-vpc': expected a VPC id",
        ),
        ("nonprod", {"vpcId": "vpc-0123456789abcdef0", "subnetIds": "[1, 2]"}, "expected a list"),
        (
            "nonprod",
            {"loadBalancerSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1"},
            "loadBalancerSubnetIds needs config predict-buy:vpcId",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    stack: str, config: dict[str, str], expected: str
) -> None:
    # given / when / then
    with pytest.raises(StackConfigError, match="config predict-buy:") as raised:
        read_runtime_settings(DictConfig(config), stack)
    assert expected in str(raised.value), str(raised.value)


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_stack_files_show_the_defaults(stack: str) -> None:
    # given the committed stack file
    config = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    values = {k.split(":", 1)[1]: str(v) for k, v in config.items() if k.startswith("predict-buy:")}

    # when
    settings = read_runtime_settings(DictConfig(values), stack)

    # then it is valid and what it shows is what the stack gets by default
    defaults = DEFAULTS[stack]
    assert settings is not None, "the stack files keep the runtime on"
    assert (settings.cpu, settings.memory) == (defaults.cpu, defaults.memory)
    assert (settings.min_tasks, settings.desired_tasks, settings.max_tasks) == (
        defaults.min_tasks,
        defaults.desired_tasks,
        defaults.max_tasks,
    )
    assert settings.log_retention_days == defaults.log_retention_days
