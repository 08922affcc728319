"""Run the Pulumi program for one stack against a mocked engine; print what it did as JSON.

Each stack runs in its own process (`python -m tests.infra.program_runner < spec.json`): the Pulumi
SDK keeps its settings and event loops in globals, so two stacks in one process would leak into
each other. The mocks fill the computed outputs real providers would (ARNs, repository URLs,
digests, the promotion report) and record every resource with its inputs (camelCase, as the engine
and policy packs see them) and its options (protect, retainOnDelete).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

import boto3
import pulumi
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.release import EcrImageLookup, ImageLookup, PublishedImage
from tests.infra import runtime_mocks

ACCOUNT = "123456789012"
REGION = "eu-west-2"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
ECR_TOKEN = "aws:ecr/getAuthorizationToken:getAuthorizationToken"  # noqa: S105 (an invoke name)
ECR_PASSWORD = "mocked-ecr-password"  # noqa: S105 (what the mocked token invoke returns)


def unwrap_secrets(value: Any) -> tuple[Any, bool]:
    """Replace the SDK's secret envelopes by their values; say whether there was one."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return unwrap_secrets(value["value"])[0], True
        pairs = {key: unwrap_secrets(item) for key, item in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [unwrap_secrets(item) for item in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


class RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, also keeping the resource options the mocks are not given."""

    def __init__(self, program_mocks: ProgramMocks) -> None:
        super().__init__(program_mocks)
        self.program_mocks = program_mocks

    def RegisterResource(self, request: Any) -> Any:
        self.program_mocks.options[(request.type, request.name)] = {
            "protect": bool(request.protect),
            "retainOnDelete": bool(request.retainOnDelete),
            "parent": request.parent,
        }
        return super().RegisterResource(request)


class ProgramMocks(pulumi.runtime.Mocks):
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.preview = bool(spec.get("preview"))
        self.resources: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.options: dict[tuple[str, str], dict[str, Any]] = {}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append({"token": args.token, "args": args.args})
        if args.token == CALLER_IDENTITY:
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/tester",
                "userId": "AIDATEST",
                "id": ACCOUNT,
            }
        if args.token == ECR_TOKEN:
            return {
                "authorizationToken": "QVdTOnRva2Vu",
                "expiresAt": "2030-01-01T00:00:00Z",
                "password": ECR_PASSWORD,
                "proxyEndpoint": f"https://{REGISTRY}",
                "userName": "AWS",
                "registryId": args.args.get("registryId", ACCOUNT),
                "id": REGION,
            }
        answer = runtime_mocks.invoke(self.spec, args.token, args.args)
        if answer is not None:
            return answer
        raise AssertionError(f"unexpected invoke {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs: dict[str, Any] = {}
        secret_inputs = []
        for key, value in args.inputs.items():
            inputs[key], secret = unwrap_secrets(value)
            if secret:
                secret_inputs.append(key)
        outputs = dict(inputs)
        outputs.update(runtime_mocks.computed_outputs(args.typ, args.name, inputs))
        resource_id = f"{args.name}-id"
        if args.typ == "aws:s3/bucket:Bucket":
            resource_id = inputs["bucket"]
            outputs["arn"] = f"arn:aws:s3:::{inputs['bucket']}"
        elif args.typ == "aws:ecr/repository:Repository":
            outputs["arn"] = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{inputs['name']}"
            outputs["repositoryUrl"] = f"{REGISTRY}/{inputs['name']}"
            outputs["registryId"] = ACCOUNT
        elif args.typ == "aws:iam/role:Role":
            resource_id = inputs["name"]
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{inputs['name']}"
        elif args.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = inputs["url"].removeprefix("https://")
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
        elif args.typ == "docker-build:index:Image" and not self.preview:
            # A real build's digest: it follows every build input (tags, labels, context...),
            # but not the registry credentials; absent in a preview, where nothing is built.
            built = {key: value for key, value in inputs.items() if key != "registries"}
            outputs["digest"] = fake_digest(json.dumps(built, sort_keys=True))
            outputs["ref"] = f"{inputs['tags'][0]}@{outputs['digest']}"
        elif args.typ == "command:local:Command" and not self.preview:
            if " infra.tag_image " in inputs["create"]:
                outputs["stdout"] = self.tag_report(inputs["create"])
            else:
                outputs["stdout"] = self.spec.get("promotion_stdout") or self.promotion_report(
                    inputs["create"]
                )
            outputs["stderr"] = ""
        elif args.typ == "pulumi:pulumi:StackReference":
            outputs = {
                "name": inputs.get("name", args.name),
                "outputs": self.spec.get("source_outputs", {}),
            }
        self.resources.append(
            {
                "type": args.typ,
                "name": args.name,
                "inputs": inputs,
                "outputs": outputs,
                "custom": bool(args.custom),
                "secretInputs": secret_inputs,
                "id": resource_id,
            }
        )
        return resource_id, outputs

    def tag_report(self, create: str) -> str:
        """What `python -m infra.tag_image` prints when the tag was added."""
        arguments = shlex.split(create)
        values = dict(zip(arguments[3::2], arguments[4::2], strict=True))
        return json.dumps(
            {
                "added": True,
                "digest": values["--digest"],
                "repository": values["--repository"],
                "tag": values["--tag"],
            },
            sort_keys=True,
        )

    def promotion_report(self, create: str) -> str:
        """What `python -m infra.promote` prints when the copy succeeds."""
        arguments = shlex.split(create)
        values = dict(zip(arguments[3::2], arguments[4::2], strict=False))
        digest = values.get("--digest") or self.spec.get("rollback_digest")
        landed = self.spec.get("landed_digest") or digest
        return json.dumps(
            {
                "copied": "--digest" in values,
                "destination": values["--destination"],
                "digest": landed,
                "source": values["--source"],
                "version": values["--version"],
            }
        )


def resolve(output: Any) -> dict[str, Any]:
    value = pulumi.Output.from_input(output)
    known = _sync_await(value.is_known())
    resolved = _sync_await(value.future(with_unknowns=False))
    return {"known": bool(known), "value": resolved, "secret": _sync_await(value.is_secret())}


class PublishedImages:
    """An ImageLookup answering from the spec: {"<repository>:<tag>": {"digest", "tags"}}."""

    def __init__(self, published: dict[str, dict[str, Any]]) -> None:
        self.published = published

    def __call__(self, repository: str, tag: str) -> PublishedImage | None:
        entry = self.published.get(f"{repository}:{tag}")
        if entry is None:
            return None
        return PublishedImage(digest=entry["digest"], tags=tuple(entry["tags"]))


def image_lookup(spec: dict[str, Any]) -> ImageLookup:
    """Never AWS: a table from the spec, or ECR served by moto_server on 127.0.0.1."""
    endpoint = spec.get("ecr_endpoint")
    if endpoint is None:
        return PublishedImages(spec.get("published", {}))
    assert endpoint.startswith("http://127.0.0.1:"), endpoint
    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto's fixed test credentials)
    )
    return EcrImageLookup(REGION, client=client)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    program_mocks = ProgramMocks(spec)
    pulumi.runtime.set_all_config(spec.get("config", {}), [])
    pulumi.runtime.set_mocks(
        program_mocks,
        project="predict-buy",
        stack=spec["stack"],
        preview=bool(spec.get("preview")),
        monitor=RecordingMonitor(program_mocks),
        organization=spec.get("organization", "organization"),
    )
    # Pulumi runs the program (and its providers) in the project's main directory, infra/.
    workdir = Path(spec["build_context"]) / "infra"
    workdir.mkdir(exist_ok=True)
    os.chdir(workdir)
    from infra.__main__ import main

    error: dict[str, Any] | None = None
    exports: dict[str, Any] = {}
    try:
        _sync_await(
            run_pulumi_func(
                lambda: main(build_context=Path(spec["build_context"]), lookup=image_lookup(spec))
            )
        )
        root = settings.get_root_resource()
        assert root is not None
        exports = {key: resolve(value) for key, value in root.outputs.items()}
    except Exception as exception:  # reported to the test, which asserts on it
        error = {
            "type": type(exception).__name__,
            "message": str(exception),
            "traceback": traceback.format_exc(),
        }
    for resource in program_mocks.resources:
        resource.update(program_mocks.options.get((resource["type"], resource["name"]), {}))
    return {
        "resources": program_mocks.resources,
        "calls": program_mocks.calls,
        "exports": exports,
        "error": error,
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(run(spec), default=str))
    sys.stdout.flush()
    # Skip interpreter teardown: the SDK leaves per-thread event loops whose finalizers only
    # print noise once the process is exiting.
    os._exit(0)


if __name__ == "__main__":
    main()
