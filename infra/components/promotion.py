"""Promotion of a nonprod release into the prod repository, by digest, never by rebuilding.

The component refuses unless the configured version is the version nonprod published (or, with
rollback, a release prod already holds), then runs `python -m infra.promote` through a
pulumi-command Command. The Command re-runs only when what it promotes changes (source digest,
repositories, version). Its JSON report is checked again here: the digest that landed in prod must
equal nonprod's, or the stack fails.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

from infra.errors import PromotionCheckError
from infra.paths import portable_python, relative_location
from infra.promote import PromotionError, PromotionReport, parse_report

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class PromotionArgs:
    version: str
    rollback: bool
    source_stack: str
    source_version: pulumi.Input[str]
    source_digest: pulumi.Input[str]
    source_repository_url: pulumi.Input[str]
    destination_repository_url: pulumi.Input[str]
    workdir: Path
    python: str


def check_source(
    version: str, rollback: bool, source_stack: str, source_version: str, source_digest: str
) -> str | None:
    """The digest to promote, or None for a rollback; raise when prod must refuse."""
    if not _DIGEST.fullmatch(str(source_digest)):
        raise PromotionCheckError(
            f"{source_stack} exports imageDigest {source_digest!r}, not sha256:<64 hex>; "
            "run `pulumi up --stack nonprod` to publish an image first"
        )
    if source_version == version:
        return source_digest
    if rollback:
        return None
    raise PromotionCheckError(
        f"stack prod is configured to promote version {version}, but {source_stack} published "
        f"version {source_version}. Promote what nonprod published with `pulumi config set "
        f"predict-buy:version {source_version} --stack prod`, or publish {version} to nonprod "
        "first; to go back to a release prod already holds, also set predict-buy:rollback true"
    )


def promote_command(
    python: str, source: str, destination: str, version: str, digest: str | None
) -> str:
    arguments = [
        python,
        "-m",
        "infra.promote",
        "--source",
        source,
        "--destination",
        destination,
        "--version",
        version,
    ]
    if digest is not None:
        arguments += ["--digest", digest]
    return shlex.join(arguments)


def check_report(stdout: str, version: str, destination: str, digest: str | None) -> str:
    """The digest prod now holds, after checking the promotion's report against what was asked."""
    try:
        report: PromotionReport = parse_report(stdout)
    except PromotionError as error:
        raise PromotionCheckError(str(error)) from error
    if report.version != version or report.destination != destination:
        raise PromotionCheckError(
            f"the promotion reported {report.destination}:v{report.version}, "
            f"expected {destination}:v{version}"
        )
    if not _DIGEST.fullmatch(report.digest):
        raise PromotionCheckError(f"the promotion reported digest {report.digest!r}")
    if digest is not None and report.digest != digest:
        raise PromotionCheckError(
            f"digest mismatch: prod {destination}:v{version} is {report.digest} but nonprod "
            f"published {digest}; the image in prod is not the one nonprod built and tested"
        )
    return report.digest


class Promotion(pulumi.ComponentResource):
    """Copy one release from nonprod to prod by digest and verify the digest that landed."""

    command: command.local.Command
    digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: PromotionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:promotion:Promotion", name, None, opts)

        digest_to_copy = pulumi.Output.all(args.source_version, args.source_digest).apply(
            lambda values: check_source(
                args.version, args.rollback, args.source_stack, values[0], values[1]
            )
        )
        # Both relative to where Pulumi runs (infra/): another checkout path re-runs nothing.
        python = portable_python(args.python, args.workdir)
        create = pulumi.Output.all(
            args.source_repository_url, args.destination_repository_url, digest_to_copy
        ).apply(
            lambda values: promote_command(python, values[0], values[1], args.version, values[2])
        )
        self.command = command.local.Command(
            name,
            create=create,
            dir=relative_location(args.workdir),
            # No `delete` command: forgetting a promotion must never delete a release from prod.
            # No credentials in `environment` either: infra.promote fetches a short-lived ECR token
            # itself, so none lands in the stack state and a fresh token causes no re-run.
            triggers=[
                digest_to_copy.apply(lambda digest: digest or "rollback"),
                args.source_repository_url,
                args.destination_repository_url,
                args.version,
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.digest = pulumi.Output.all(
            self.command.stdout, args.destination_repository_url, digest_to_copy
        ).apply(lambda values: check_report(values[0], args.version, values[1], values[2]))

        self.register_outputs({"digest": self.digest})
