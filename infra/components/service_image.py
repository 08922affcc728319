"""The service image: built from service/Dockerfile (context: the repository root), pushed to ECR.

Order of work, all before the build starts: the model files are verified against models/model.json,
the build context is fingerprinted, and the version tag is looked up in the repository so that new
content under an already published version fails with a request to bump the version. Registry
credentials come from an ECR token fetched for this resource only (credentials on a provider make
every preview show a diff). During a preview nothing is built or pushed.

Nothing commit-specific is an input of the build: its tags are `v<version>` and `inputs-<hash>`
only, and no label names the commit. So a new commit with the same build inputs gives the same
image resource: nothing is rebuilt, and nothing is pushed to the immutable `v<version>` tag. The
git-sha tag is added after the push, by digest (`python -m infra.tag_image`, a Command that re-runs
when the digest or the commit changes), which never changes the image or its digest.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_docker_build as docker_build

from infra.build_context import context_fingerprint, verify_model_artefacts
from infra.components.repository import ImageRepository
from infra.errors import ReleaseError
from infra.release import ImageLookup, Release, already_published

PLATFORM: Final = docker_build.Platform.LINUX_AMD64


@dataclass(frozen=True)
class ServiceImageArgs:
    repository: ImageRepository
    repository_name: str
    version: str
    git_sha: str
    context_dir: Path
    dockerfile: Path
    lookup: ImageLookup
    region: str
    python: str


def tag_command(python: str, repository: str, region: str, digest: str, tag: str) -> str:
    """The command line that adds `tag` to the pushed image `digest` (infra.tag_image)."""
    return shlex.join(
        [
            python,
            "-m",
            "infra.tag_image",
            "--repository",
            repository,
            "--region",
            region,
            "--digest",
            digest,
            "--tag",
            tag,
        ]
    )


class ServiceImage(pulumi.ComponentResource):
    """Build and push one release of the service image; expose its digest."""

    release: Release
    is_rerun: bool
    image: docker_build.Image
    commit_tag: command.local.Command
    digest: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:image:ServiceImage", name, None, opts)

        verify_model_artefacts(args.context_dir)
        if not args.dockerfile.is_file():
            raise ReleaseError(
                f"{args.dockerfile}: the service Dockerfile is missing from the build context"
            )
        self.release = Release(
            version=args.version,
            git_sha=args.git_sha,
            context_fingerprint=context_fingerprint(args.context_dir, args.dockerfile),
        )
        self.is_rerun = already_published(args.repository_name, self.release, args.lookup)
        if self.is_rerun:
            pulumi.log.info(
                f"{args.repository_name}:{self.release.version_tag} already holds these build "
                "inputs; nothing new to push",
                resource=self,
            )

        token = aws.ecr.get_authorization_token_output(
            registry_id=args.repository.registry_id,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        url = args.repository.url
        self.image = docker_build.Image(
            name,
            context=docker_build.BuildContextArgs(location=str(args.context_dir)),
            dockerfile=docker_build.DockerfileArgs(location=str(args.dockerfile)),
            platforms=[PLATFORM],
            tags=[url.apply(lambda base, tag=tag: f"{base}:{tag}") for tag in self.release.tags],
            labels={
                "org.opencontainers.image.title": "predict_buy_app",
                "org.opencontainers.image.version": self.release.version,
                # No org.opencontainers.image.revision: a commit label would change the image
                # config, so its digest, on every commit, and the immutable v<version> tag would
                # refuse the push. The commit is the git-sha tag, added below by digest.
            },
            push=True,
            # Previews never push; with this they do not build either, so a preview needs no
            # Docker daemon and never shows a push.
            build_on_preview=False,
            registries=[
                docker_build.RegistryArgs(
                    address=url,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.digest = self.image.digest
        self.image_ref = pulumi.Output.concat(url, "@", self.image.digest)

        # The commit's tag, on the pushed digest. No `delete`: forgetting it removes no image.
        self.commit_tag = command.local.Command(
            f"{name}-commit-tag",
            create=self.digest.apply(
                lambda digest: tag_command(
                    args.python, args.repository_name, args.region, digest, self.release.commit_tag
                )
            ),
            dir=str(args.context_dir),
            triggers=[self.digest, self.release.commit_tag],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.image]),
        )

        self.register_outputs({"digest": self.digest, "imageRef": self.image_ref})
