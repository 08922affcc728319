"""The service image: built from service/Dockerfile (context: the repository root), pushed to ECR.

Order of work, all before the build starts: the model files are verified against models/model.json,
the build context is fingerprinted, and the version tag is looked up in the repository so that new
content under an already published version fails with a request to bump the version. During a
preview nothing is built or pushed.

Checkout-independent: the build context and Dockerfile are given to the build relative to the
program's working directory (infra/, where Pulumi runs both the program and its providers), so
another checkout path (a laptop, another runner) gives the same inputs. When the release guard
finds `v<version>` already holding these exact inputs (`is_rerun`), nothing is built at all: the
published digest is adopted. The built image is retained on delete: dropping the resource (a
re-run adopting it, a destroy) never removes a published release from the registry.

No registry credentials are inputs: the build pushes with the ambient Docker login (`docker login`
to ECR before `pulumi up`, as the publish workflow does), so no ECR token lands in the stack state.

Nothing commit-specific is an input of the build: its tags are `v<version>` and `inputs-<hash>`
only, and no label names the commit. The git-sha tag is added after the push, by digest
(`python -m infra.tag_image`, a Command that re-runs when the digest or the commit changes), which
never changes the image or its digest.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_command as command
import pulumi_docker_build as docker_build

from infra.build_context import context_fingerprint, verify_model_artefacts
from infra.components.repository import ImageRepository
from infra.errors import ReleaseError
from infra.paths import portable_python, relative_location
from infra.release import ImageLookup, PublishedImage, Release, find_published

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
    """Build and push one release of the service image (or adopt it); expose its digest."""

    release: Release
    is_rerun: bool
    published: PublishedImage | None
    image: docker_build.Image | None
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
        self.published = find_published(args.repository_name, self.release, args.lookup)
        self.is_rerun = self.published is not None
        url = args.repository.url
        command_dir = relative_location(args.context_dir)

        if self.published is not None:
            pulumi.log.info(
                f"{args.repository_name}:{self.release.version_tag} already holds these build "
                f"inputs ({self.published.digest}); adopting it, nothing is built or pushed",
                resource=self,
            )
            self.image = None
            self.digest = pulumi.Output.from_input(self.published.digest)
        else:
            self.image = docker_build.Image(
                name,
                context=docker_build.BuildContextArgs(location=command_dir),
                dockerfile=docker_build.DockerfileArgs(location=relative_location(args.dockerfile)),
                platforms=[PLATFORM],
                tags=[
                    url.apply(lambda base, tag=tag: f"{base}:{tag}") for tag in self.release.tags
                ],
                labels={
                    "org.opencontainers.image.title": "predict_buy_app",
                    "org.opencontainers.image.version": self.release.version,
                    # No org.opencontainers.image.revision: a commit label would change the image
                    # config, so its digest, on every commit, and the immutable v<version> tag
                    # would refuse the push. The commit is the git-sha tag, added below by digest.
                },
                push=True,
                # Previews never push; with this they do not build either, so a preview needs no
                # Docker daemon and never shows a push.
                build_on_preview=False,
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            self.digest = self.image.digest
        self.image_ref = pulumi.Output.concat(url, "@", self.digest)

        # The commit's tag, on the pushed digest. No `delete`: forgetting it removes no image.
        python = portable_python(args.python, args.context_dir)
        self.commit_tag = command.local.Command(
            f"{name}-commit-tag",
            create=self.digest.apply(
                lambda digest: tag_command(
                    python, args.repository_name, args.region, digest, self.release.commit_tag
                )
            ),
            dir=command_dir,
            triggers=[self.digest, self.release.commit_tag],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.image] if self.image is not None else []
            ),
        )

        self.register_outputs({"digest": self.digest, "imageRef": self.image_ref})
