"""Stack nonprod under a mocked engine: resources, security settings, names, outputs, failures."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import (
    GIT_SHA,
    NONPROD_REPOSITORY,
    NONPROD_URL,
    RunStack,
    StackRun,
    write_build_context,
)
from tests.infra.program_runner import ACCOUNT, ECR_PASSWORD

BUCKET = "aws:s3/bucket:Bucket"
IMAGE = "docker-build:index:Image"
COMMAND = "command:local:Command"
REPOSITORY = "aws:ecr/repository:Repository"
ROLE = "aws:iam/role:Role"


def by_name(run: StackRun, resource_type: str) -> dict[str, dict]:
    return {r["name"]: r for r in run.of_type(resource_type)}


def github_roles(run: StackRun) -> list[dict]:
    """The GitHub OIDC roles (the runtime's task roles are tested in test_runtime*.py)."""
    return [r for r in run.of_type(ROLE) if r["name"].startswith("github-")]


def test_bucket_is_private_encrypted_versioned_and_tls_only(nonprod_run: StackRun) -> None:
    # given the mocked nonprod program
    # when it has run
    bucket = nonprod_run.one(BUCKET)
    encryption = nonprod_run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    public = nonprod_run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    versioning = nonprod_run.one("aws:s3/bucketVersioning:BucketVersioning")
    ownership = nonprod_run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    policy = json.loads(nonprod_run.one("aws:s3/bucketPolicy:BucketPolicy")["inputs"]["policy"])
    lifecycle = nonprod_run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")

    # then the bucket and every setting attached to it are as the issue asks
    assert bucket["inputs"]["bucket"] == "ce7-grp-1-bucket"
    assert bucket["inputs"].get("forceDestroy") is False, "deleting the stack must keep the data"
    for attached in (encryption, public, versioning, ownership, lifecycle):
        assert attached["inputs"]["bucket"] == "ce7-grp-1-bucket", attached["name"]
    rule = encryption["inputs"]["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["bucketKeyEnabled"] is True
    assert all(
        public["inputs"][flag] is True
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    ), public["inputs"]
    assert versioning["inputs"]["versioningConfiguration"]["status"] == "Enabled"
    assert ownership["inputs"]["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        "arn:aws:s3:::ce7-grp-1-bucket",
        "arn:aws:s3:::ce7-grp-1-bucket/*",
    ]
    [expiry] = lifecycle["inputs"]["rules"]
    assert expiry["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert expiry["status"] == "Enabled"


def test_bucket_has_the_two_prefixes(nonprod_run: StackRun) -> None:
    # given / when the nonprod program ran
    keys = sorted(
        o["inputs"]["key"] for o in nonprod_run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    )

    # then the folders users upload to and DVC pushes to exist
    assert keys == ["DVC_Artefacts/", "new_ML_data/"]


def test_repository_name_and_security_settings(nonprod_run: StackRun) -> None:
    # given / when
    repository = nonprod_run.one(REPOSITORY)
    lifecycle = json.loads(
        nonprod_run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]["policy"]
    )
    policy = json.loads(
        nonprod_run.one("aws:ecr/repositoryPolicy:RepositoryPolicy")["inputs"]["policy"]
    )

    # then
    inputs = repository["inputs"]
    assert inputs["name"] == NONPROD_REPOSITORY
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    assert inputs["forceDelete"] is False
    assert repository["protect"] is False, "nonprod repositories may be replaced"
    selections = [rule["selection"] for rule in lifecycle["rules"]]
    assert selections[0]["tagPatternList"] == ["v*"] and selections[0]["countNumber"] == 10
    assert selections[1] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 15,
    }, "nonprod keeps untagged images 15 days, as the original"
    [allow] = policy["Statement"]
    assert allow["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert sorted(allow["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ], "the repository policy grants pulls only"


def test_image_is_built_from_the_service_dockerfile_and_tagged(
    nonprod_run: StackRun, module_context: Path
) -> None:
    # given / when
    image = nonprod_run.one(IMAGE)["inputs"]

    # then the paths are relative to infra/, where Pulumi runs program and providers
    assert image["context"] == {"location": ".."}
    assert image["dockerfile"] == {"location": "../service/Dockerfile"}
    assert str(module_context) not in json.dumps(image), "no checkout path in the build inputs"
    assert image["push"] is True
    assert image["buildOnPreview"] is False, "a preview must neither build nor push"
    tags = image["tags"]
    assert len(tags) == 2, f"only the version and inputs tags are build inputs: {tags}"
    assert tags[0] == f"{NONPROD_URL}:v0.1.0"
    assert tags[1].startswith(f"{NONPROD_URL}:inputs-")
    assert not any(GIT_SHA[:12] in tag for tag in tags), "the commit is tagged after the push"
    assert image["labels"]["org.opencontainers.image.version"] == "0.1.0"
    assert "org.opencontainers.image.revision" not in image["labels"], (
        "a commit label changes the image digest on every commit"
    )
    assert nonprod_run.one(IMAGE)["retainOnDelete"] is True, (
        "dropping the image resource must never delete a published release"
    )


def test_no_registry_credentials_reach_the_stack_state(nonprod_run: StackRun) -> None:
    # given every input of every resource the nonprod program registered
    state = json.dumps([r["inputs"] for r in nonprod_run.resources])

    # then no registry credentials are among them: the build pushes with the ambient login
    assert "registries" not in nonprod_run.one(IMAGE)["inputs"]
    assert ECR_PASSWORD not in state
    assert not [c for c in nonprod_run.calls if c["token"].endswith("getAuthorizationToken")], (
        "no ECR token is fetched into the program, so none can land in the state"
    )


def test_outputs(nonprod_run: StackRun) -> None:
    # given / when / then
    digest = nonprod_run.value("imageDigest")
    assert digest.startswith("sha256:") and len(digest) == 71
    assert nonprod_run.value("bucketName") == "ce7-grp-1-bucket"
    assert nonprod_run.value("dvcRemoteUrl") == "s3://ce7-grp-1-bucket/DVC_Artefacts/"
    assert nonprod_run.value("dataUrl") == "s3://ce7-grp-1-bucket/new_ML_data/"
    assert nonprod_run.value("repositoryUrl") == NONPROD_URL
    assert nonprod_run.value("version") == "0.1.0"
    assert nonprod_run.value("gitSha") == GIT_SHA[:12]
    assert nonprod_run.value("imageRef") == f"{NONPROD_URL}@{digest}"
    assert "deployRoleArn" not in nonprod_run.exports, "no roles unless githubOidc is set"
    assert not github_roles(nonprod_run)


def test_preview_pushes_nothing_and_leaves_the_digest_unknown(run_stack: RunStack) -> None:
    # given / when a preview
    run = run_stack("nonprod", preview=True)

    # then the image neither builds nor pushes and its digest is not known yet
    assert run.error is None, run.error
    assert run.one(IMAGE)["inputs"]["buildOnPreview"] is False
    assert "digest" not in run.one(IMAGE)["outputs"], "nothing was built, so no digest"
    assert run.exports["imageDigest"]["known"] is False
    assert run.exports["version"]["value"] == "0.1.0"


def test_github_oidc_roles_are_pinned_and_least_privilege(nonprod_oidc_run: StackRun) -> None:
    # given githubOidc=true for acme/predict-buy, createOidcProvider=true
    roles = {r["name"]: r for r in github_roles(nonprod_oidc_run)}
    policies = {
        p["name"]: json.loads(p["inputs"]["policy"])
        for p in nonprod_oidc_run.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    provider = nonprod_oidc_run.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")

    # then the provider is GitHub's, with STS as the only audience
    assert provider["inputs"]["url"] == "https://token.actions.githubusercontent.com"
    assert provider["inputs"]["clientIdLists"] == ["sts.amazonaws.com"]
    subjects = {}
    for name, role in roles.items():
        [trust] = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
        assert trust["Principal"]["Federated"].endswith(
            ":oidc-provider/token.actions.githubusercontent.com"
        )
        condition = trust["Condition"]
        assert condition["StringEquals"] == {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
        }
        subjects[name] = condition["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert subjects == {
        "github-preview": [
            "repo:acme/predict-buy:pull_request",
            "repo:acme/predict-buy:environment:drift",
        ],
        "github-train": ["repo:acme/predict-buy:ref:refs/heads/*"],
        "github-dvc-write": ["repo:acme/predict-buy:ref:refs/heads/main"],
        "github-deploy": ["repo:acme/predict-buy:ref:refs/heads/main"],
        "github-promote": ["repo:acme/predict-buy:environment:production"],
    }, "writers trust main or the production environment only; branches get read-only roles"
    assert policies["github-preview-permissions"]  # read-only: tests/infra/test_least_privilege
    train = {s["Sid"]: s for s in policies["github-train-permissions"]["Statement"]}
    assert train["ReadTrainingData"]["Resource"] == "arn:aws:s3:::ce7-grp-1-bucket/new_ML_data/*"
    assert train["ReadDvcRemote"]["Action"] == ["s3:GetObject"], "branches never write DVC"
    assert train["ListPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        "new_ML_data/*",
        "new_ML_data",
        "DVC_Artefacts/*",
        "DVC_Artefacts",
    ], "training may list its two prefixes only"
    writer = {s["Sid"]: s for s in policies["github-dvc-write-permissions"]["Statement"]}
    assert writer["WriteDvcRemote"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert writer["WriteDvcRemote"]["Resource"] == "arn:aws:s3:::ce7-grp-1-bucket/DVC_Artefacts/*"
    for purpose in ("deploy", "promote", "dvc-write", "train"):
        statements = policies[f"github-{purpose}-permissions"]["Statement"]
        assert not any(a.startswith("iam:") for s in statements for a in s["Action"]), (
            f"the {purpose} role must not be able to change IAM, or it could widen its own rights"
        )
    for purpose in ("deploy", "promote", "preview", "train", "dvc-write"):
        assert nonprod_oidc_run.value(f"{purpose.replace('-w', 'W')}RoleArn").endswith(
            f":role/ce7-grp-1-github-{purpose}"
        )


NONPROD_ARN = "arn:aws:ecr:eu-west-2:123456789012:repository/ce7-grp-1/nonprod/predict_buy_app"
PROD_ARN = "arn:aws:ecr:eu-west-2:123456789012:repository/ce7-grp-1/prod/predict_buy_app"


def allowed(policy: dict[str, Any]) -> dict[str, set[str]]:
    """Resource ARN (or pattern) -> the actions the policy allows on it."""
    grants: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            grants.setdefault(resource, set()).update(statement["Action"])
    return grants


def permissions_of(run: StackRun, purpose: str) -> dict[str, Any]:
    [policy] = [
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p["name"] == f"github-{purpose}-permissions"
    ]
    return json.loads(policy["inputs"]["policy"])


def test_deploy_role_reaches_nonprod_only(nonprod_oidc_run: StackRun) -> None:
    # given the deploy role's policy
    grants = allowed(permissions_of(nonprod_oidc_run, "deploy"))

    # then it pushes to and reads the nonprod repository and pulls the model, nothing on prod
    assert {"ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImageScanFindings"} <= grants[
        NONPROD_ARN
    ]
    assert not any("*" in action for action in grants[NONPROD_ARN]), "no wildcards"
    assert grants["arn:aws:s3:::ce7-grp-1-bucket/DVC_Artefacts/*"] == {"s3:GetObject"}
    assert grants["arn:aws:s3:::ce7-grp-1-bucket"] == {"s3:ListBucket"}
    assert PROD_ARN not in grants, "publishing to nonprod must not reach the prod repository"
    assert grants["*"] == {"ecr:GetAuthorizationToken"}


def test_promote_role_pulls_nonprod_pushes_prod_and_never_deletes(
    nonprod_oidc_run: StackRun,
) -> None:
    # given the promote role's policy
    policy = permissions_of(nonprod_oidc_run, "promote")
    grants = allowed(policy)

    # then nonprod is pull-only (the verified-<version> evidence is read by pulling)
    assert grants[NONPROD_ARN] == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:GetDownloadUrlForLayer",
    }, "promote may only read and pull from nonprod"
    # and prod gets pushes, no repository settings
    prod = grants[PROD_ARN]
    assert {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:CompleteLayerUpload"} <= prod
    assert not any("*" in action for action in prod), f"no wildcards on prod: {sorted(prod)}"
    assert not prod & {"ecr:SetRepositoryPolicy", "ecr:PutImageTagMutability"}
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert (
        set(deny["Action"])
        >= {
            "ecr:DeleteRepository",
            "ecr:BatchDeleteImage",
            "ecr:SetRepositoryPolicy",
            "ecr:PutImageTagMutability",
        }
        and deny["Resource"] == "*"
    )
    # and no S3, no KMS
    actions = {action for granted in grants.values() for action in granted}
    assert not [a for a in actions if a.startswith(("s3:", "kms:"))], sorted(actions)
    assert grants["*"] == {"ecr:GetAuthorizationToken"}


def test_existing_oidc_provider_is_reused(run_stack: RunStack) -> None:
    # given githubOidc without createOidcProvider (the account already has GitHub's provider)
    config = {
        "aws:region": "eu-west-2",
        "predict-buy:githubOidc": "true",
        "predict-buy:githubRepository": "acme/predict-buy",
    }

    # when
    run = run_stack("nonprod", config=config)

    # then no provider is created and the roles trust the account's existing one
    assert run.error is None, run.error
    assert not run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    trust = json.loads(github_roles(run)[0]["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"]["Federated"] == (
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    )


def test_bucket_name_is_derived_per_account_and_region_when_unset(run_stack: RunStack) -> None:
    # given a fresh account's config: no bucketName (ce7-grp-1-bucket is another account's)
    config = {"aws:region": "eu-west-2"}

    # when
    run = run_stack("nonprod", config=config)

    # then the bucket gets a name only this account can hold, and the outputs use it
    expected = f"ce7-grp-1-data-{ACCOUNT}-eu-west-2"
    assert run.one(BUCKET)["inputs"]["bucket"] == expected
    assert run.value("bucketName") == expected
    assert run.value("dvcRemoteUrl") == f"s3://{expected}/DVC_Artefacts/"


def test_data_bucket_is_protected_from_destroy(nonprod_run: StackRun) -> None:
    # given / when / then
    assert nonprod_run.one(BUCKET)["protect"] is True, "a destroy must not delete the data"


def test_a_second_checkout_path_gives_the_same_resources(
    tmp_path: Path, run_stack: RunStack
) -> None:
    # given the same sources checked out at two different paths
    first = run_stack("nonprod", context=write_build_context(tmp_path / "laptop" / "predict-buy"))
    second = run_stack("nonprod", context=write_build_context(tmp_path / "runner" / "work" / "x"))
    assert first.error is None and second.error is None, (first.error, second.error)

    # when their resources are compared
    def inputs(run: StackRun) -> dict[str, Any]:
        return {(r["type"], r["name"]): r["inputs"] for r in run.resources}

    # then nothing differs: no replaced image, no rebuild, no re-run of the commands
    assert inputs(first) == inputs(second)
    assert first.value("imageDigest") == second.value("imageDigest")


def test_config_name_prefix_and_bucket_name_are_used(run_stack: RunStack) -> None:
    # given another prefix and bucket
    config = {
        "aws:region": "eu-west-2",
        "predict-buy:namePrefix": "acme",
        "predict-buy:bucketName": "acme-data",
        "predict-buy:imageRetentionDays": "7",
    }

    # when
    run = run_stack("nonprod", config=config)

    # then
    assert run.one(REPOSITORY)["inputs"]["name"] == "acme/nonprod/predict_buy_app"
    assert run.value("dvcRemoteUrl") == "s3://acme-data/DVC_Artefacts/"
    lifecycle = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["inputs"]["policy"])
    assert lifecycle["rules"][1]["selection"]["countNumber"] == 7


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "aws:region"),
        ({"aws:region": "eu-west-2", "aws:defaultTags": "null"}, "aws:defaultTags"),
        (
            {"aws:region": "eu-west-2", "aws:defaultTags": '{"tags": {"Project": "p"}}'},
            "has no Owner, CostCenter",
        ),
        ({"aws:region": "eu-west-2", "predict-buy:namePrefix": "Bad Prefix"}, "namePrefix"),
        ({"aws:region": "eu-west-2", "predict-buy:githubOidc": "true"}, "githubRepository"),
        ({"aws:region": "eu-west-2", "predict-buy:version": "0.1.0"}, "version is set on stack"),
    ],
    ids=[
        "no-region",
        "no-default-tags",
        "tags-without-owner-and-cost",
        "bad-prefix",
        "oidc-without-repository",
        "version-on-nonprod",
    ],
)
def test_bad_config_fails_naming_the_key(
    run_stack: RunStack, config: dict[str, str], expected: str
) -> None:
    # given / when
    run = run_stack("nonprod", config=config)

    # then
    assert expected in run.failure(), run.failure()
    assert not run.of_type(IMAGE), "nothing may be built on bad config"


def test_missing_model_fails_before_building(tmp_path: Path, run_stack: RunStack) -> None:
    # given a checkout where the model was never pulled
    context = write_build_context(tmp_path / "fresh")
    (context / "models" / "model.npz").unlink()

    # when
    run = run_stack("nonprod", context=context)

    # then the error names the file and the command that fetches it
    message = run.failure()
    assert run.error["type"] == "ModelArtefactError"
    assert "model.npz" in message and "dvc pull train evaluate" in message, message
    assert not run.of_type(IMAGE), "the image must not be built without its model"


def test_corrupt_model_fails_before_building(tmp_path: Path, run_stack: RunStack) -> None:
    # given a model file that does not match the sha256 in model.json
    context = write_build_context(tmp_path / "corrupt")
    (context / "models" / "model.skops").write_bytes(b"something else")

    # when
    run = run_stack("nonprod", context=context)

    # then
    message = run.failure()
    assert "model.skops" in message and "sha256" in message and "dvc pull train evaluate" in message
    assert not run.of_type(IMAGE)


def test_non_semver_version_fails(tmp_path: Path, run_stack: RunStack) -> None:
    # given pyproject.toml with a version that is not SemVer
    context = write_build_context(tmp_path / "badversion", version="1.0")

    # when
    run = run_stack("nonprod", context=context)

    # then
    assert run.error["type"] == "ReleaseError"
    assert "'1.0': not a SemVer version" in run.failure(), run.failure()
    assert not run.of_type(IMAGE)


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_version_published_with_other_content_fails_before_pushing(
    run_stack: RunStack, preview: bool
) -> None:
    # given v0.1.0 is already in the repository, built from other inputs
    published = {
        f"{NONPROD_REPOSITORY}:v0.1.0": {
            "digest": "sha256:" + "cd" * 32,
            "tags": ["v0.1.0", "fedcba987654", "inputs-000000000000000000000000"],
        }
    }

    # when (a preview checks too, so a pull request learns it needs a version bump)
    run = run_stack("nonprod", published=published, preview=preview)

    # then the run stops before the image resource, asking for a version bump
    message = run.failure()
    assert run.error["type"] == "ReleaseError"
    assert "already published" in message and "bump [project].version" in message, message
    assert "0.1.1" in message, "the message suggests the next patch version"
    assert not run.of_type(IMAGE), "nothing may be pushed"


def test_version_published_with_the_same_inputs_is_a_rerun(
    run_stack: RunStack, nonprod_run: StackRun
) -> None:
    # given v0.1.0 is in the repository with this build's inputs tag
    inputs_tag = nonprod_run.one(IMAGE)["inputs"]["tags"][1].rsplit(":", 1)[1]
    published = {
        f"{NONPROD_REPOSITORY}:v0.1.0": {
            "digest": "sha256:" + "cd" * 32,
            "tags": ["v0.1.0", GIT_SHA[:12], inputs_tag],
        }
    }

    # when
    run = run_stack("nonprod", published=published)

    # then nothing is built: the published digest is adopted and exported
    assert run.error is None, run.error
    assert not run.of_type(IMAGE), "a re-run must not build (another checkout would rebuild)"
    assert run.value("imageDigest") == "sha256:" + "cd" * 32
    assert run.value("imageRef") == f"{NONPROD_URL}@sha256:" + "cd" * 32
    tagger = shlex.split(run.one(COMMAND)["inputs"]["create"])
    assert tagger[tagger.index("--digest") + 1] == "sha256:" + "cd" * 32, (
        "the commit's tag goes on the adopted digest"
    )


def test_publish_false_brings_nonprod_up_without_a_model(
    tmp_path: Path, run_stack: RunStack
) -> None:
    # given an empty account's first run: nothing trained yet, so no model in the checkout
    context = write_build_context(tmp_path / "empty")
    for path in (context / "models").iterdir():
        path.unlink()
    config = {
        "aws:region": "eu-west-2",
        "predict-buy:publish": "false",
        "predict-buy:githubOidc": "true",
        "predict-buy:githubRepository": "acme/predict-buy",
    }

    # when
    run = run_stack("nonprod", config=config, context=context)

    # then the bucket, the repository and the roles come up, and no image is built or adopted
    assert run.error is None, run.error
    assert run.one(BUCKET) and run.one(REPOSITORY) and run.of_type(ROLE)
    assert not run.of_type(IMAGE) and not run.of_type(COMMAND)
    assert "imageDigest" not in run.exports and "version" not in run.exports
    assert run.value("repositoryUrl").endswith("/ce7-grp-1/nonprod/predict_buy_app")


def test_release_guard_reads_ecr_over_http(run_stack: RunStack, moto_ecr: str, ecr: Any) -> None:
    # given moto's ECR holds v0.1.0 pushed from other inputs
    client = ecr
    repository = "guard/nonprod/predict_buy_app"
    client.create_repository(repositoryName=repository)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {},
            "layers": [],
        }
    )
    client.put_image(repositoryName=repository, imageManifest=manifest, imageTag="v0.1.0")
    config = {"aws:region": "eu-west-2", "predict-buy:namePrefix": "guard"}

    # when the program runs against that registry API
    run = run_stack("nonprod", config=config, ecr_endpoint=moto_ecr)

    # then the guard found the tag and refused
    assert "guard/nonprod/predict_buy_app:v0.1.0 is already published" in run.failure()

    # and a fresh repository name passes the same check
    fresh = run_stack(
        "nonprod",
        config={"aws:region": "eu-west-2", "predict-buy:namePrefix": "fresh"},
        ecr_endpoint=moto_ecr,
    )
    assert fresh.error is None, fresh.error


def test_a_new_commit_with_the_same_build_inputs_changes_no_image_input(
    run_stack: RunStack,
) -> None:
    # given two publications of the same build context from two different commits
    first = run_stack("nonprod", github_sha="1111111111111111111111111111111111111111")
    second = run_stack("nonprod", github_sha="2222222222222222222222222222222222222222")
    assert first.error is None and second.error is None, (first.error, second.error)

    # when their image resources are compared
    first_image, second_image = first.one(IMAGE), second.one(IMAGE)

    # then the build inputs are identical, so Pulumi sees no change: no rebuild, no push
    assert first_image["inputs"] == second_image["inputs"], (
        "something commit-specific is a build input: a new commit would rebuild and push to "
        "the immutable v<version> tag"
    )
    assert first.value("imageDigest") == second.value("imageDigest")
    # and only the commit-tag command differs: it tags the same digest with each commit
    first_tag = shlex.split(first.one(COMMAND)["inputs"]["create"])
    second_tag = shlex.split(second.one(COMMAND)["inputs"]["create"])
    assert first_tag[first_tag.index("--tag") + 1] == "111111111111"
    assert second_tag[second_tag.index("--tag") + 1] == "222222222222"
    assert first.value("gitSha") == "111111111111" and second.value("gitSha") == "222222222222"


def test_the_commit_is_tagged_on_the_pushed_digest_after_the_push(nonprod_run: StackRun) -> None:
    # given / when the nonprod program ran
    tagger = nonprod_run.one(COMMAND)
    arguments = shlex.split(tagger["inputs"]["create"])
    digest = nonprod_run.value("imageDigest")

    # then a Command runs infra.tag_image on the pushed digest, re-run by digest or commit
    assert arguments[:3] == [sys.executable, "-m", "infra.tag_image"]
    assert tagger["inputs"]["dir"] == "..", "run from the checkout root, relative to infra/"
    assert dict(zip(arguments[3::2], arguments[4::2], strict=True)) == {
        "--repository": NONPROD_REPOSITORY,
        "--region": "eu-west-2",
        "--digest": digest,
        "--tag": GIT_SHA[:12],
    }
    assert tagger["inputs"]["triggers"] == [digest, GIT_SHA[:12]]
    assert "delete" not in tagger["inputs"], "forgetting the tag must not delete an image"
    assert tagger["parent"] and "ServiceImage" in tagger["parent"], "part of the service image"


def test_preview_plans_the_commit_tag_without_running_it(run_stack: RunStack) -> None:
    # given / when a preview (nothing is built, so no digest is known)
    run = run_stack("nonprod", preview=True)

    # then the tag command is planned but has not run
    assert run.error is None, run.error
    assert "stdout" not in run.one(COMMAND)["outputs"]
