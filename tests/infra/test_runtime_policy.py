"""The runtime's policy rules on both stacks' resources, and on deliberately broken copies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.policy import rules
from tests.infra.conftest import StackRun
from tests.infra.test_policy import violations

Mutation = Callable[[list[dict[str, Any]]], None]
RUNTIME_RULES = {
    "ecs-image-pinned-by-digest",
    "ecs-no-public-ip",
    "ecs-deployment-rolls-back",
    "lb-target-health-readyz",
    "autoscaling-bounded",
    "lb-health-check-readyz",
    "ecs-service-autoscaled",
}


def _find(resources: list[dict[str, Any]], resource_type: str) -> dict[str, Any]:
    return next(r for r in resources if r["type"] == resource_type)


def _change(resource_type: str, change: Callable[[dict[str, Any]], None]) -> Mutation:
    """Apply `change` to the inputs and the outputs of the first resource of that type."""

    def mutate(resources: list[dict[str, Any]]) -> None:
        target = _find(resources, resource_type)
        change(target["inputs"])
        change(target["outputs"])

    return mutate


def _image(image: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        containers = json.loads(props["containerDefinitions"])
        containers[0]["image"] = image
        props["containerDefinitions"] = json.dumps(containers)

    return change


def _nested(key: str, inner: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        props[key] = {**props[key], inner: value}

    return change


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        props[key] = value

    return change


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        props.pop(key, None)

    return change


def _drop(resource_type: str) -> Mutation:
    def mutate(resources: list[dict[str, Any]]) -> None:
        resources[:] = [r for r in resources if r["type"] != resource_type]

    return mutate


TAGGED = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/ce7-grp-1/prod/predict_buy_app:v0.1.0"
BAD = [
    ({"ecs-image-pinned-by-digest"}, _change(rules.TASK_DEFINITION, _image(TAGGED))),
    (
        {"ecs-image-pinned-by-digest"},
        _change(rules.TASK_DEFINITION, _set("containerDefinitions", "[]")),
    ),
    (
        {"ecs-no-public-ip"},
        _change(rules.ECS_SERVICE, _nested("networkConfiguration", "assignPublicIp", True)),
    ),
    (
        {"ecs-deployment-rolls-back"},
        _change(rules.ECS_SERVICE, _nested("deploymentCircuitBreaker", "rollback", False)),
    ),
    (
        {"ecs-deployment-rolls-back"},
        _change(rules.ECS_SERVICE, _delete("deploymentCircuitBreaker")),
    ),
    (
        {"ecs-deployment-rolls-back"},
        _change(rules.ECS_SERVICE, _set("deploymentMinimumHealthyPercent", 50)),
    ),
    ({"ecs-deployment-rolls-back"}, _change(rules.ECS_SERVICE, _delete("waitForSteadyState"))),
    (
        {"lb-target-health-readyz", "lb-health-check-readyz"},
        _change(rules.TARGET_GROUP, _nested("healthCheck", "path", "/")),
    ),
    (
        {"lb-target-health-readyz", "lb-health-check-readyz"},
        _change(rules.TARGET_GROUP, _nested("healthCheck", "enabled", False)),
    ),
    ({"lb-health-check-readyz"}, _drop(rules.LISTENER)),
    ({"autoscaling-bounded"}, _change(rules.SCALING_TARGET, _set("maxCapacity", 1000))),
    ({"autoscaling-bounded"}, _change(rules.SCALING_TARGET, _delete("maxCapacity"))),
    ({"autoscaling-bounded"}, _change(rules.SCALING_TARGET, _set("minCapacity", 0))),
    ({"ecs-service-autoscaled"}, _drop(rules.SCALING_TARGET)),
]


def test_runtime_rules_are_part_of_the_pack() -> None:
    # given / when
    names = {policy.name for policy in rules.policies()}

    # then every runtime rule is served by the policy pack (infra/policy/__main__.py)
    assert names >= RUNTIME_RULES, RUNTIME_RULES - names


def test_no_runtime_violations_in_either_stack(nonprod_run: StackRun, prod_run: StackRun) -> None:
    # given / when / then
    for run in (nonprod_run, prod_run):
        assert run.error is None, run.error
        assert violations(run.resources) == {}


@pytest.mark.parametrize(("stack"), ["nonprod", "prod"])
@pytest.mark.parametrize(
    ("fired", "break_it"), BAD, ids=[f"{sorted(f)[0]}-{i}" for i, (f, _) in enumerate(BAD)]
)
def test_each_runtime_rule_reports_its_violation(
    stack: str,
    fired: set[str],
    break_it: Mutation,
    nonprod_run: StackRun,
    prod_run: StackRun,
) -> None:
    # given one stack's runtime with one setting broken
    resources = copy.deepcopy({"nonprod": nonprod_run, "prod": prod_run}[stack].resources)
    break_it(resources)

    # when
    found = violations(resources)

    # then exactly the rules for that setting fire, each with a message
    assert set(found) == fired, f"expected {fired} to fire, got {found}"
    assert all(message for messages in found.values() for message in messages)


def test_an_unknown_image_in_a_preview_is_not_a_violation(nonprod_run: StackRun) -> None:
    # given a preview's task definition, whose container definitions are not known yet
    resources = copy.deepcopy(nonprod_run.resources)
    for props in ("inputs", "outputs"):
        _find(resources, rules.TASK_DEFINITION)[props].pop("containerDefinitions")

    # when / then the rule waits for the real value instead of guessing
    assert "ecs-image-pinned-by-digest" not in violations(resources)
