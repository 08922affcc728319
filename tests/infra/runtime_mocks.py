"""What the mocked engine answers for the runtime: network look-ups and computed outputs.

tests.infra.program_runner calls `invoke` for look-ups it does not know and `computed_outputs`
for every new resource. The spec may replace the default VPC's subnets ("default_subnets").
"""

from __future__ import annotations

from typing import Any, Final

ACCOUNT: Final = "123456789012"
REGION: Final = "eu-west-2"
DEFAULT_VPC: Final = "vpc-0default0000000001"
DEFAULT_SUBNETS: Final = (
    "subnet-0ccc000000000000c",
    "subnet-0aaa000000000000a",
    "subnet-0bbb000000000000b",
)
ROUTE_TABLES: Final = ("rtb-0main00000000000001",)
GET_VPC: Final = "aws:ec2/getVpc:getVpc"
GET_SUBNETS: Final = "aws:ec2/getSubnets:getSubnets"
GET_ROUTE_TABLES: Final = "aws:ec2/getRouteTables:getRouteTables"


def load_balancer_dns(name: str) -> str:
    """The DNS name AWS gives a load balancer named after the resource `name`."""
    return f"{name}-1234567.{REGION}.elb.amazonaws.com"


def invoke(spec: dict[str, Any], token: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """The answer to a network look-up, or None for a token this module does not know."""
    if token == GET_VPC:
        assert args.get("default") is True, f"only the default VPC is looked up, got {args}"
        return {"id": DEFAULT_VPC, "default": True, "cidrBlock": "172.31.0.0/16"}
    if token == GET_SUBNETS:
        filters = {f["name"]: f["values"] for f in args.get("filters", [])}
        assert filters.get("vpc-id") == [DEFAULT_VPC], f"subnets of another VPC: {filters}"
        assert filters.get("default-for-az") == ["true"], f"not the default subnets: {filters}"
        ids = list(spec.get("default_subnets", DEFAULT_SUBNETS))
        return {"id": REGION, "ids": ids, "filters": args.get("filters", [])}
    if token == GET_ROUTE_TABLES:
        return {"id": REGION, "ids": list(ROUTE_TABLES), "vpcId": args.get("vpcId")}
    return None


def computed_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs AWS computes for the runtime's resources (the mocks echo inputs otherwise)."""
    if typ == "aws:lb/loadBalancer:LoadBalancer":
        suffix = f"app/{name}/50dc6c495c0c9188"
        return {
            "arn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/{suffix}",
            "arnSuffix": suffix,
            "dnsName": load_balancer_dns(name),
        }
    if typ == "aws:lb/targetGroup:TargetGroup":
        suffix = f"targetgroup/{name}/943f017f100becff"
        return {
            "arn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:{suffix}",
            "arnSuffix": suffix,
        }
    if typ == "aws:lb/listener:Listener":
        return {"arn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/{name}"}
    if typ == "aws:ecs/cluster:Cluster":
        return {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{inputs['name']}"}
    if typ == "aws:ecs/taskDefinition:TaskDefinition":
        family = inputs["family"]
        return {
            "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:1",
            "revision": 1,
        }
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        return {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{inputs['name']}"}
    if typ == "aws:ec2/securityGroup:SecurityGroup":
        return {"arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-{name}"}
    return {}
