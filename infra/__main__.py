"""Pulumi program entry: read the stack's config, wire the components, export the outputs.

Stack nonprod: data bucket, nonprod repository, the service image (and, with githubOidc, the
GitHub OIDC roles). Stack prod: prod repository and the promotion of nonprod's release by digest.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this file with infra/ as the working directory and on sys.path; the program imports
# the packages by their full names (infra.*, ml.*), so the repository root must be importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402 (after the path fix above)

from infra.components.bucket import DATA_PREFIX, DVC_PREFIX, DataBucket, DataBucketArgs  # noqa: E402
from infra.components.github_oidc import GithubOidc, GithubOidcArgs  # noqa: E402
from infra.components.promotion import Promotion, PromotionArgs  # noqa: E402
from infra.components.repository import ImageRepository, ImageRepositoryArgs  # noqa: E402
from infra.components.service_image import ServiceImage, ServiceImageArgs  # noqa: E402
from infra.release import EcrImageLookup, ImageLookup, read_git_sha, read_project_version  # noqa: E402
from infra.runtime_settings import read_runtime_settings  # noqa: E402 (issue 13: runtime)
from infra.runtime_stack import deploy_runtime, grant_runtime_access  # noqa: E402 (issue 13)
from infra.settings import (  # noqa: E402
    NONPROD,
    PROD,
    REPO_ROOT,
    NonprodSettings,
    ProdSettings,
    read_settings,
    repository_name,
)


def nonprod(
    settings: NonprodSettings, region: str, build_context: Path, lookup: ImageLookup
) -> None:
    bucket = DataBucket(
        "data",
        DataBucketArgs(
            bucket_name=settings.bucket_name,
            noncurrent_version_days=settings.noncurrent_version_days,
        ),
    )
    repository = ImageRepository(
        "nonprod-repository",
        ImageRepositoryArgs(
            name=settings.repository_name,
            retention_days=settings.image_retention_days,
            keep_releases=settings.keep_releases,
            protected=False,
        ),
    )
    image = ServiceImage(
        "service-image",
        ServiceImageArgs(
            repository=repository,
            repository_name=settings.repository_name,
            version=read_project_version(build_context / "pyproject.toml"),
            git_sha=read_git_sha(build_context),
            context_dir=build_context,
            dockerfile=build_context / "service" / "Dockerfile",
            lookup=lookup,
            region=region,
            python=sys.executable,
        ),
    )
    pulumi.export("bucketName", bucket.name)
    pulumi.export("dvcRemoteUrl", pulumi.Output.concat("s3://", bucket.name, "/", DVC_PREFIX))
    pulumi.export("dataUrl", pulumi.Output.concat("s3://", bucket.name, "/", DATA_PREFIX))
    pulumi.export("repositoryUrl", repository.url)
    pulumi.export("version", image.release.version)
    pulumi.export("gitSha", image.release.git_sha)
    pulumi.export("imageDigest", image.digest)
    pulumi.export("imageRef", image.image_ref)

    if settings.github_oidc is not None:
        oidc = GithubOidc(
            "github",
            GithubOidcArgs(
                github_repository=settings.github_oidc.repository,
                create_provider=settings.github_oidc.create_provider,
                deploy_branch=settings.github_oidc.deploy_branch,
                name_prefix=settings.name_prefix,
                region=region,
                bucket_name=settings.bucket_name,
                nonprod_repository_name=settings.repository_name,
                prod_repository_name=repository_name(settings.name_prefix, PROD),
            ),
        )
        pulumi.export("previewRoleArn", oidc.preview_role.arn)
        pulumi.export("deployRoleArn", oidc.deploy_role.arn)
        pulumi.export("promoteRoleArn", oidc.promote_role.arn)
        pulumi.export("trainRoleArn", oidc.train_role.arn)
        grant_runtime_access(oidc, settings.name_prefix, region)  # issue 13: roll the services

    # Runtime (issue 13): nonprod runs the image it just published, by digest.
    runtime = read_runtime_settings(pulumi.Config(), NONPROD)
    deploy_runtime(NONPROD, settings.name_prefix, region, repository, image.image_ref, runtime)


def prod(settings: ProdSettings, region: str, workdir: Path) -> None:
    source = pulumi.StackReference(settings.source_stack)
    repository = ImageRepository(
        "prod-repository",
        ImageRepositoryArgs(
            name=settings.repository_name,
            retention_days=settings.image_retention_days,
            keep_releases=settings.keep_releases,
            protected=True,
        ),
    )
    source_repository_url = source.require_output("repositoryUrl")
    source_digest = source.require_output("imageDigest")
    promotion = Promotion(
        "promotion",
        PromotionArgs(
            version=settings.version,
            rollback=settings.rollback,
            source_stack=settings.source_stack,
            source_version=source.require_output("version"),
            source_digest=source_digest,
            source_repository_url=source_repository_url,
            destination_repository_url=repository.url,
            workdir=workdir,
            python=sys.executable,
        ),
    )
    pulumi.export("repositoryUrl", repository.url)
    pulumi.export("version", settings.version)
    pulumi.export("imageDigest", promotion.digest)
    image_ref = pulumi.Output.concat(repository.url, "@", promotion.digest)
    pulumi.export("imageRef", image_ref)
    # What nonprod published, read from nonprod itself (never from the promotion's report), so
    # the promote workflow's comparison of imageRef with sourceImageRef is a real check.
    pulumi.export("sourceImageRef", pulumi.Output.concat(source_repository_url, "@", source_digest))

    # Runtime (issue 13): prod runs its own repository at the promoted (or rolled-back) digest.
    runtime = read_runtime_settings(pulumi.Config(), PROD)
    deploy_runtime(PROD, settings.name_prefix, region, repository, image_ref, runtime)


def main(build_context: Path = REPO_ROOT, lookup: ImageLookup | None = None) -> None:
    """Run the program for the current stack; tests pass another build context and lookup."""
    stack = pulumi.get_stack()
    settings = read_settings(pulumi.Config(), stack)
    region = pulumi.Config("aws").require("region")
    if isinstance(settings, NonprodSettings):
        nonprod(settings, region, build_context, lookup or EcrImageLookup(region))
    elif isinstance(settings, ProdSettings):
        prod(settings, region, build_context)


if __name__ == "__main__":
    main()
