"""Pulumi program entry: read the stack's config, run the preflight checks, wire the components.

Stack nonprod: data bucket, nonprod repository, the service image (unless publish is false) and,
with githubOidc, the GitHub OIDC roles. Stack prod: prod repository and, once a version is set,
the promotion of nonprod's release by digest. Each stack is one function below that takes plain,
already validated values; another component is wired in with a few lines in it.
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
import pulumi_aws as aws  # noqa: E402

from infra.components.bucket import DATA_PREFIX, DVC_PREFIX, DataBucket, DataBucketArgs  # noqa: E402
from infra.components.github_oidc import GithubOidc, GithubOidcArgs  # noqa: E402
from infra.components.promotion import Promotion, PromotionArgs  # noqa: E402
from infra.components.repository import ImageRepository, ImageRepositoryArgs  # noqa: E402
from infra.components.service_image import ServiceImage, ServiceImageArgs  # noqa: E402
from infra.release import EcrImageLookup, ImageLookup, read_git_sha, read_project_version  # noqa: E402
from infra.runtime_settings import read_runtime_settings  # noqa: E402
from infra.runtime_stack import deploy_runtime, grant_runtime_access  # noqa: E402
from infra.settings import (  # noqa: E402
    NONPROD,
    PROD,
    REPO_ROOT,
    NonprodSettings,
    ProdSettings,
    check_default_tags,
    default_bucket_name,
    read_settings,
    repository_name,
    source_stack_for,
)


def nonprod(
    settings: NonprodSettings,
    bucket_name: str,
    region: str,
    build_context: Path,
    lookup: ImageLookup,
) -> None:
    bucket = DataBucket(
        "data",
        DataBucketArgs(
            bucket_name=bucket_name,
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
    pulumi.export("bucketName", bucket.name)
    pulumi.export("dvcRemoteUrl", pulumi.Output.concat("s3://", bucket.name, "/", DVC_PREFIX))
    pulumi.export("dataUrl", pulumi.Output.concat("s3://", bucket.name, "/", DATA_PREFIX))
    pulumi.export("repositoryUrl", repository.url)

    image: ServiceImage | None = None
    if settings.publish:
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
        pulumi.export("version", image.release.version)
        pulumi.export("gitSha", image.release.git_sha)
        pulumi.export("imageDigest", image.digest)
        pulumi.export("imageRef", image.image_ref)
        # True once the release is adopted (nothing built in this run); the publish job runs a
        # second, converging `pulumi up` after a build so the state holds the adopted form and
        # the drift check sees no change.
        pulumi.export("imageAdopted", image.is_rerun)
    else:
        pulumi.log.info(
            "predict-buy:publish is false: no model check and no image (bootstrap of an empty "
            "account); remove the setting to publish"
        )

    if settings.github_oidc is not None:
        oidc = GithubOidc(
            "github",
            GithubOidcArgs(
                github_repository=settings.github_oidc.repository,
                create_provider=settings.github_oidc.create_provider,
                deploy_branch=settings.github_oidc.deploy_branch,
                name_prefix=settings.name_prefix,
                region=region,
                bucket_name=bucket_name,
                nonprod_repository_name=settings.repository_name,
                prod_repository_name=repository_name(settings.name_prefix, PROD),
            ),
        )
        pulumi.export("previewRoleArn", oidc.preview_role.arn)
        pulumi.export("deployRoleArn", oidc.deploy_role.arn)
        pulumi.export("promoteRoleArn", oidc.promote_role.arn)
        pulumi.export("trainRoleArn", oidc.train_role.arn)
        pulumi.export("dvcWriteRoleArn", oidc.dvc_write_role.arn)
        grant_runtime_access(oidc, settings.name_prefix, region)

    if image is not None:
        # The runtime runs the image this stack just published (or adopted), by digest.
        runtime = read_runtime_settings(pulumi.Config(), NONPROD)
        deploy_runtime(NONPROD, settings.name_prefix, region, repository, image.image_ref, runtime)


def prod(settings: ProdSettings, source_stack: str, region: str, workdir: Path) -> None:
    repository = ImageRepository(
        "prod-repository",
        ImageRepositoryArgs(
            name=settings.repository_name,
            retention_days=settings.image_retention_days,
            keep_releases=settings.keep_releases,
            protected=True,
        ),
    )
    pulumi.export("repositoryUrl", repository.url)
    if settings.version is None:
        pulumi.log.info(
            "predict-buy:version is not set: the prod repository only, nothing promoted yet "
            "(the promote workflow sets the version)"
        )
        return

    source = pulumi.StackReference(source_stack)
    source_repository_url = source.require_output("repositoryUrl")
    source_digest = source.require_output("imageDigest")
    promotion = Promotion(
        "promotion",
        PromotionArgs(
            version=settings.version,
            rollback=settings.rollback,
            source_stack=source_stack,
            source_version=source.require_output("version"),
            source_digest=source_digest,
            source_repository_url=source_repository_url,
            destination_repository_url=repository.url,
            workdir=workdir,
            python=sys.executable,
        ),
    )
    pulumi.export("version", settings.version)
    pulumi.export("imageDigest", promotion.digest)
    image_ref = pulumi.Output.concat(repository.url, "@", promotion.digest)
    pulumi.export("imageRef", image_ref)
    # What nonprod published, read from nonprod itself (never from the promotion's report), so
    # the promote workflow's comparison of imageRef with sourceImageRef is a real check.
    pulumi.export("sourceImageRef", pulumi.Output.concat(source_repository_url, "@", source_digest))

    # The runtime runs prod's own repository at the promoted (or rolled-back) digest.
    runtime = read_runtime_settings(pulumi.Config(), PROD)
    deploy_runtime(PROD, settings.name_prefix, region, repository, image_ref, runtime)


def main(build_context: Path = REPO_ROOT, lookup: ImageLookup | None = None) -> None:
    """Run the program for the current stack; tests pass another build context and lookup."""
    stack = pulumi.get_stack()
    settings = read_settings(pulumi.Config(), stack)
    aws_config = pulumi.Config("aws")
    region = aws_config.require("region")
    # Preflight: every AWS resource gets the cost and owner tags through the provider's default
    # tags, so a stack file without them fails here, before anything is created.
    check_default_tags(aws_config.get_object("defaultTags"))
    if isinstance(settings, NonprodSettings):
        bucket_name = settings.bucket_name or default_bucket_name(
            settings.name_prefix, aws.get_caller_identity().account_id, region
        )
        nonprod(settings, bucket_name, region, build_context, lookup or EcrImageLookup(region))
    elif isinstance(settings, ProdSettings):
        source_stack = settings.source_stack or source_stack_for(
            pulumi.get_organization(), pulumi.get_project()
        )
        prod(settings, source_stack, region, build_context)


if __name__ == "__main__":
    main()
