"""Policy rules for predict-buy: private encrypted buckets, safe registries, protected prod.

Each rule is a plain function taking pulumi_policy's args and `report_violation`, so tests call it
directly on the resources the mocked program registers (building a `PolicyPack` starts a server).
`__main__.py` only wraps these in a PolicyPack. Properties arrive camelCase, as the engine sends.

Resource rules (inputs of one resource):
  s3-encryption-kms          SSE-KMS (aws:kms or aws:kms:dsse) with a bucket key
  s3-versioning-enabled      versioning status Enabled
  s3-public-access-blocked   all four public-access blocks true
  s3-ownership-enforced      BucketOwnerEnforced: ACLs disabled
  s3-tls-only                the bucket policy denies s3:* when aws:SecureTransport is false
  s3-no-acl                  no ACL, no force_destroy on the bucket
  ecr-scan-on-push           scan on push
  ecr-tag-immutability       IMMUTABLE (or IMMUTABLE_WITH_EXCLUSION with its filters)
  ecr-encryption-kms         KMS encryption
  prod-protected             a .../prod/... repository is protected and never force-deleted
  github-oidc-trust-pinned   a role trusting GitHub requires audience sts.amazonaws.com and
                             subjects of one named repository
  s3-bucket-protected        the data bucket is `protect`ed: a destroy cannot delete it
  iam-deploy-least-privilege the deploy role's policy allows none of DEPLOY_DENIED_ACTIONS
                             (object-version deletes, bucket settings and deletion, repository
                             policy, tag mutability), not even through a wildcard
  iam-promote-least-privilege the promote role's policy allows none of PROMOTE_DENIED_ACTIONS
  iam-preview-read-only      the preview role's policy allows only reads (Get/List/Describe/...)
Stack rules (all resources):
  s3-bucket-complete         every bucket has each of the settings above and a lifecycle
  ecr-lifecycle-present      every repository has a lifecycle that expires untagged images and
                             keeps a bounded number of v* releases
  dvc-remote-writers         only roles trusting the deploy branch (refs/heads/main) or the
                             production environment may write under DVC_Artefacts/
Role policies are told apart by their plain name, `<prefix>-github-<purpose>-permissions` (and
`<prefix>-github-<purpose>-runtime-permissions` for the runtime's), which is known in a preview (the
role's id is not until it exists).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

BUCKET: Final = "aws:s3/bucket:Bucket"
ENCRYPTION: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
VERSIONING: Final = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP: Final = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_POLICY: Final = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_LIFECYCLE: Final = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
REPOSITORY: Final = "aws:ecr/repository:Repository"
REPOSITORY_LIFECYCLE: Final = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
ROLE: Final = "aws:iam/role:Role"
ROLE_POLICY: Final = "aws:iam/rolePolicy:RolePolicy"
DVC_PREFIX: Final = "DVC_Artefacts/"
# Kept here as data (the pack must not import the components); infra.components.github_oidc
# imports them for the roles' explicit denies, so the role and its rule cannot drift apart.
# Never for deploy (main): rights that would weaken the bucket or the registry, or destroy data.
DEPLOY_DENIED_ACTIONS: Final = (
    "ecr:BatchDeleteImage",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
    "ecr:PutImageTagMutability",
    "ecr:SetRepositoryPolicy",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObjectVersion",
    "s3:PutBucketAcl",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
)
# Never for promote (production): deleting from prod or changing its repository's guards.
PROMOTE_DENIED_ACTIONS: Final = (
    "ecr:BatchDeleteImage",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:SetRepositoryPolicy",
)
READ_ONLY_ACTION = re.compile(r"^[a-z0-9-]+:(Get|List|Describe|BatchGet|BatchCheck)[A-Za-z*]*$")
DVC_WRITERS = re.compile(r"^repo:[^:]+/[^:]+:(ref:refs/heads/main|environment:production)$")

KMS_ALGORITHMS: Final = ("aws:kms", "aws:kms:dsse")
PUBLIC_ACCESS_FLAGS: Final = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
GITHUB_OIDC_HOST: Final = "token.actions.githubusercontent.com"
PINNED_SUBJECT = re.compile(r"^repo:[A-Za-z0-9-]+/[A-Za-z0-9._-]+:\S+$")

ResourceRule = Callable[[ResourceValidationArgs, ReportViolation], None]
StackRule = Callable[[StackValidationArgs, ReportViolation], None]


def _document(value: Any) -> dict[str, Any]:
    """A policy document given as JSON text or as a mapping."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(value) if isinstance(value, Mapping) else {}


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", document.get("statements", []))
    if isinstance(statements, Mapping):
        return [statements]
    return [s for s in statements if isinstance(s, Mapping)] if isinstance(statements, list) else []


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _only(resource_type: str, rule: ResourceRule) -> ResourceRule:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type == resource_type:
            rule(args, report_violation)

    validate.__doc__ = rule.__doc__
    return validate


def check_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Default encryption must be SSE-KMS with the bucket key on."""
    rules = _as_list(args.props.get("rules"))
    if not rules:
        report_violation("the bucket encryption configuration has no rules", None)
    for rule in rules:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        algorithm = default.get("sseAlgorithm")
        if algorithm not in KMS_ALGORITHMS:
            report_violation(
                f"default encryption is {algorithm!r}; use one of {', '.join(KMS_ALGORITHMS)}",
                None,
            )
        if rule.get("bucketKeyEnabled") is not True:
            report_violation("bucketKeyEnabled must be true (one KMS data key per bucket)", None)


def check_versioning(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Versioning must be Enabled so overwritten data and models can be recovered."""
    status = (args.props.get("versioningConfiguration") or {}).get("status")
    if status != "Enabled":
        report_violation(f"bucket versioning is {status!r}; it must be 'Enabled'", None)


def check_public_access(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """All four public-access blocks must be on."""
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if args.props.get(flag) is not True]
    if off:
        report_violation(f"public access is not fully blocked: {', '.join(off)} not true", None)


def check_ownership(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Object ownership must be BucketOwnerEnforced, which disables ACLs."""
    ownership = (args.props.get("rule") or {}).get("objectOwnership")
    if ownership != "BucketOwnerEnforced":
        report_violation(f"object ownership is {ownership!r}; use 'BucketOwnerEnforced'", None)


def denies_insecure_transport(policy: Any) -> bool:
    for statement in _statements(_document(policy)):
        condition = statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if (
            statement.get("Effect") == "Deny"
            and str(secure).lower() == "false"
            and ("s3:*" in actions or "*" in actions)
            and any(not str(r).endswith("/*") for r in resources)
            and any(str(r).endswith("/*") for r in resources)
        ):
            return True
    return False


def check_tls_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The bucket policy must deny every request made without TLS, to the bucket and objects."""
    if not denies_insecure_transport(args.props.get("policy")):
        report_violation(
            "the bucket policy has no Deny of s3:* on the bucket and its objects when "
            "aws:SecureTransport is false",
            None,
        )


def check_bucket_basics(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No ACLs on the bucket and no force_destroy (which would delete data with the stack)."""
    acl = args.props.get("acl")
    if acl not in (None, "", "private"):
        report_violation(f"the bucket sets ACL {acl!r}; ACLs are disabled, remove it", None)
    if args.props.get("forceDestroy") is True:
        report_violation("forceDestroy is true: deleting the stack would delete the data", None)


def check_scan_on_push(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every pushed image must be scanned."""
    scanning = args.props.get("imageScanningConfiguration") or {}
    if scanning.get("scanOnPush") is not True:
        report_violation("imageScanningConfiguration.scanOnPush must be true", None)


def check_tag_immutability(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Release tags must be immutable; an exclusion is allowed only with explicit filters."""
    mutability = args.props.get("imageTagMutability")
    filters = _as_list(args.props.get("imageTagMutabilityExclusionFilters"))
    if mutability == "IMMUTABLE":
        return
    if mutability == "IMMUTABLE_WITH_EXCLUSION" and filters:
        return
    report_violation(
        f"imageTagMutability is {mutability!r}; use 'IMMUTABLE' (or 'IMMUTABLE_WITH_EXCLUSION' "
        "with exclusion filters for a mutable convenience tag)",
        None,
    )


def check_repository_encryption(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """Images must be encrypted with KMS."""
    configurations = _as_list(args.props.get("encryptionConfigurations"))
    types = [c.get("encryptionType") for c in configurations if isinstance(c, Mapping)]
    if not types or any(t not in ("KMS", "KMS_DSSE") for t in types):
        report_violation(f"repository encryption is {types or 'default'}; use 'KMS'", None)


def check_prod_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A prod repository holds what users run: protected, and never force-deleted."""
    if "/prod/" not in f"/{args.props.get('name', '')}/":
        return
    if not args.opts.protect:
        report_violation(f"{args.props.get('name')} is a prod repository: set protect=True", None)
    if args.props.get("forceDelete") is True:
        report_violation(
            f"{args.props.get('name')} is a prod repository: forceDelete must not be true", None
        )


def check_github_trust(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A role GitHub can assume must pin the audience and one repository's subjects."""
    for statement in _statements(_document(args.props.get("assumeRolePolicy"))):
        federated = _as_list((statement.get("Principal") or {}).get("Federated"))
        if not any(GITHUB_OIDC_HOST in str(principal) for principal in federated):
            continue
        condition = statement.get("Condition") or {}
        audience = (condition.get("StringEquals") or {}).get(f"{GITHUB_OIDC_HOST}:aud")
        if audience != "sts.amazonaws.com":
            report_violation(
                f"the GitHub trust does not require audience sts.amazonaws.com (got {audience!r})",
                None,
            )
        subjects = [
            subject
            for operator in ("StringEquals", "StringLike")
            for subject in _as_list((condition.get(operator) or {}).get(f"{GITHUB_OIDC_HOST}:sub"))
        ]
        unpinned = [s for s in subjects if not PINNED_SUBJECT.fullmatch(str(s))]
        if not subjects or unpinned:
            report_violation(
                "the GitHub trust must pin token subjects to one repository "
                f"(repo:<owner>/<name>:...); got {subjects or 'no subject condition'}",
                None,
            )


def _by_bucket(resources: list[Any], resource_type: str) -> dict[str, Any]:
    return {
        str(r.props.get("bucket")): r
        for r in resources
        if r.resource_type == resource_type and r.props.get("bucket") is not None
    }


def check_bucket_complete(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket in the stack comes with all of its protective settings (s3-tls-only and the
    other resource rules check what each setting says)."""
    required = {
        ENCRYPTION: "an encryption configuration",
        VERSIONING: "versioning",
        PUBLIC_ACCESS: "a public access block",
        OWNERSHIP: "ownership controls",
        BUCKET_POLICY: "bucket policy",
        BUCKET_LIFECYCLE: "a lifecycle configuration",
    }
    attached = {kind: _by_bucket(args.resources, kind) for kind in required}
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        name = str(bucket.props.get("bucket"))
        missing = [label for kind, label in required.items() if name not in attached[kind]]
        if missing:
            report_violation(f"bucket {name} has no {', no '.join(missing)}", bucket.urn)


def lifecycle_problems(policy: Any) -> list[str]:
    rules = _document(policy).get("rules", [])
    expires_untagged = any(
        r.get("selection", {}).get("tagStatus") in ("untagged", "any")
        and r.get("action", {}).get("type") == "expire"
        for r in rules
    )
    keeps_releases = any(
        r.get("selection", {}).get("tagStatus") == "tagged"
        and r.get("selection", {}).get("countType") == "imageCountMoreThan"
        and any(str(p).startswith("v") for p in r.get("selection", {}).get("tagPatternList", []))
        for r in rules
    )
    problems = []
    if not expires_untagged:
        problems.append("no rule expires untagged images")
    if not keeps_releases:
        problems.append("no rule keeps only the last N v* releases")
    return problems


def check_repository_lifecycle(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    """Every repository has a lifecycle policy that prunes untagged images and old releases."""
    lifecycles = {
        str(r.props.get("repository")): r
        for r in args.resources
        if r.resource_type == REPOSITORY_LIFECYCLE
    }
    for repository in (r for r in args.resources if r.resource_type == REPOSITORY):
        name = str(repository.props.get("name"))
        lifecycle = lifecycles.get(name)
        if lifecycle is None:
            report_violation(f"repository {name} has no lifecycle policy", repository.urn)
            continue
        problems = lifecycle_problems(lifecycle.props.get("policy"))
        if problems:
            report_violation(
                f"repository {name} lifecycle policy: {'; '.join(problems)}", repository.urn
            )


def check_bucket_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The data bucket must be protected, so `pulumi destroy` cannot delete the data."""
    if not args.opts.protect:
        report_violation(
            f"bucket {args.props.get('bucket')} holds the data and the DVC remote: set "
            "protect=True so a destroy cannot delete it",
            None,
        )


def allows(document: Any, action: str) -> bool:
    """Whether the policy allows `action` (wildcards and NotAction included; Deny on * wins)."""
    wanted = action.lower()

    def matches(patterns: Any) -> bool:
        return any(fnmatch.fnmatchcase(wanted, str(p).lower()) for p in _as_list(patterns))

    statements = _statements(_document(document))
    for statement in statements:
        denied_everywhere = "*" in _as_list(statement.get("Resource"))
        if (
            statement.get("Effect") == "Deny"
            and denied_everywhere
            and matches(statement.get("Action"))
        ):
            return False
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        if "Action" in statement and matches(statement.get("Action")):
            return True
        if "NotAction" in statement and not matches(statement.get("NotAction")):
            return True
    return False


# `<prefix>-github-<purpose>-permissions`, or `...-<purpose>-runtime-permissions` (the runtime's).
_ROLE_POLICY_NAME = re.compile(
    r"(?P<role>.+-github-(?P<purpose>[a-z-]+?))(?:-runtime)?-permissions"
)


def _purpose(args: ResourceValidationArgs) -> str:
    match = _ROLE_POLICY_NAME.fullmatch(str(args.props.get("name") or ""))
    return match.group("purpose") if match else ""


def _forbid(purpose: str, denied: tuple[str, ...]) -> ResourceRule:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if _purpose(args) != purpose:
            return
        granted = [action for action in denied if allows(args.props.get("policy"), action)]
        if granted:
            report_violation(
                f"the {purpose} role's policy allows {', '.join(granted)}; it must not (least "
                "privilege: an administrator makes those changes)",
                None,
            )

    validate.__doc__ = f"The {purpose} role's policy allows none of its denied actions."
    return validate


check_deploy_least_privilege = _forbid("deploy", DEPLOY_DENIED_ACTIONS)
check_promote_least_privilege = _forbid("promote", PROMOTE_DENIED_ACTIONS)


def _allowed_actions(document: Any) -> list[str]:
    found: list[str] = []
    for statement in _statements(_document(document)):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            found.append("NotAction:" + ",".join(map(str, _as_list(statement["NotAction"]))))
        found.extend(str(a) for a in _as_list(statement.get("Action")))
    return found


def check_preview_read_only(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """The preview role (pull requests, drift check) may only read."""
    if _purpose(args) != "preview":
        return
    writes = [
        a for a in _allowed_actions(args.props.get("policy")) if not READ_ONLY_ACTION.match(a)
    ]
    # Pulling an image needs a registry token; it grants nothing by itself.
    writes = [a for a in writes if a != "ecr:GetAuthorizationToken"]
    if writes:
        report_violation(f"the preview role must be read-only, but it allows {writes}", None)


def _github_subjects(role: Any) -> list[str]:
    subjects: list[str] = []
    for statement in _statements(_document(role.props.get("assumeRolePolicy"))):
        condition = statement.get("Condition") or {}
        for operator in ("StringEquals", "StringLike"):
            subjects += map(
                str, _as_list((condition.get(operator) or {}).get(f"{GITHUB_OIDC_HOST}:sub"))
            )
    return subjects


def writes_dvc_remote(document: Any) -> bool:
    """Whether the policy allows s3:PutObject on objects under DVC_Artefacts/."""
    for statement in _statements(_document(document)):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        if not any(fnmatch.fnmatchcase("s3:putobject", a) for a in actions):
            continue
        for resource in map(str, _as_list(statement.get("Resource"))):
            key = resource.split(":::", 1)[-1].partition("/")[2] if ":::" in resource else "*"
            if resource == "*" or fnmatch.fnmatchcase(f"{DVC_PREFIX}model", key):
                return True
    return False


def check_dvc_remote_writers(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Only roles trusting main or the production environment may write the DVC remote."""
    roles = {str(r.props.get("name")): r for r in args.resources if r.resource_type == ROLE}
    for policy in (r for r in args.resources if r.resource_type == ROLE_POLICY):
        if not writes_dvc_remote(policy.props.get("policy")):
            continue
        match = _ROLE_POLICY_NAME.fullmatch(str(policy.props.get("name") or ""))
        role = roles.get(match.group("role")) if match else None
        if role is None:
            continue  # not a GitHub role of this program
        others = [s for s in _github_subjects(role) if not DVC_WRITERS.fullmatch(s)]
        if others:
            report_violation(
                f"role {role.props.get('name')} writes {DVC_PREFIX} but trusts {others}; only the "
                "deploy branch (main) or the production environment may write the DVC remote",
                policy.urn,
            )


MANDATORY = EnforcementLevel.MANDATORY

RESOURCE_RULES: Final[dict[str, tuple[str, str, ResourceRule]]] = {
    "s3-encryption-kms": (ENCRYPTION, "Buckets use SSE-KMS with a bucket key.", check_encryption),
    "s3-versioning-enabled": (VERSIONING, "Buckets keep object versions.", check_versioning),
    "s3-public-access-blocked": (
        PUBLIC_ACCESS,
        "All four public-access blocks are on.",
        check_public_access,
    ),
    "s3-ownership-enforced": (
        OWNERSHIP,
        "ACLs are disabled (BucketOwnerEnforced).",
        check_ownership,
    ),
    "s3-tls-only": (BUCKET_POLICY, "Bucket policies deny requests without TLS.", check_tls_only),
    "s3-no-acl": (BUCKET, "Buckets set no ACL and no force_destroy.", check_bucket_basics),
    "ecr-scan-on-push": (REPOSITORY, "Repositories scan images on push.", check_scan_on_push),
    "ecr-tag-immutability": (REPOSITORY, "Release tags are immutable.", check_tag_immutability),
    "ecr-encryption-kms": (
        REPOSITORY,
        "Repositories encrypt with KMS.",
        check_repository_encryption,
    ),
    "prod-protected": (REPOSITORY, "Prod repositories are protected.", check_prod_protected),
    "github-oidc-trust-pinned": (
        ROLE,
        "GitHub OIDC trust is pinned to one repository.",
        check_github_trust,
    ),
    "s3-bucket-protected": (BUCKET, "The data bucket is protected.", check_bucket_protected),
    "iam-deploy-least-privilege": (
        ROLE_POLICY,
        "The deploy role cannot weaken or delete the bucket or the registry.",
        check_deploy_least_privilege,
    ),
    "iam-promote-least-privilege": (
        ROLE_POLICY,
        "The promote role cannot delete from prod or change its repository's guards.",
        check_promote_least_privilege,
    ),
    "iam-preview-read-only": (
        ROLE_POLICY,
        "The preview role only reads.",
        check_preview_read_only,
    ),
}

STACK_RULES: Final[dict[str, tuple[str, StackRule]]] = {
    "s3-bucket-complete": (
        "Every bucket has encryption, versioning, public access block, ownership controls, a "
        "TLS-only policy and a lifecycle.",
        check_bucket_complete,
    ),
    "ecr-lifecycle-present": (
        "Every repository has a lifecycle expiring untagged images and old releases.",
        check_repository_lifecycle,
    ),
    "dvc-remote-writers": (
        "Only main or the production environment may write the DVC remote.",
        check_dvc_remote_writers,
    ),
}


def resource_rule(name: str) -> ResourceRule:
    """The validate function of a resource rule, filtered to its resource type."""
    resource_type, _, rule = RESOURCE_RULES[name]
    return _only(resource_type, rule)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """The rules as pulumi_policy policies, all mandatory."""
    built: list[ResourceValidationPolicy | StackValidationPolicy] = [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=resource_rule(name),
            enforcement_level=MANDATORY,
        )
        for name, (_, description, _) in RESOURCE_RULES.items()
    ]
    built += [
        StackValidationPolicy(
            name=name, description=description, validate=rule, enforcement_level=MANDATORY
        )
        for name, (description, rule) in STACK_RULES.items()
    ]
    return built


# -- Runtime: ECS Fargate behind an Application Load Balancer ------------------------
# Resource rules:
#   ecs-image-pinned-by-digest   every container image of a task definition is repository@sha256:
#   ecs-no-public-ip             a service never gives its tasks a public IP
#   ecs-deployment-rolls-back    circuit breaker with rollback, minimum healthy >= 100%, and
#                                `pulumi up` waits for steady state (a failed deploy fails it)
#   lb-target-health-readyz      a target group's health check is on, on /readyz
#   autoscaling-bounded          a scalable target has 1 <= min <= max <= MAX_TASKS_LIMIT
# Stack rules:
#   lb-health-check-readyz       every load balancer forwards to a target group checking /readyz
#   ecs-service-autoscaled       every ECS service has a bounded scalable target

from infra.runtime_settings import MAX_TASKS_LIMIT  # noqa: E402 (the runtime section's own import)

TASK_DEFINITION: Final = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE: Final = "aws:ecs/service:Service"
TARGET_GROUP: Final = "aws:lb/targetGroup:TargetGroup"
LOAD_BALANCER: Final = "aws:lb/loadBalancer:LoadBalancer"
LISTENER: Final = "aws:lb/listener:Listener"
SCALING_TARGET: Final = "aws:appautoscaling/target:Target"
READINESS_PATH: Final = "/readyz"
DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


def _containers(definitions: Any) -> list[Mapping[str, Any]] | None:
    """Container definitions given as JSON text or a list; None while unknown (a preview)."""
    if isinstance(definitions, str):
        try:
            definitions = json.loads(definitions)
        except json.JSONDecodeError:
            return []
    if not isinstance(definitions, list):
        return None
    return [d for d in definitions if isinstance(d, Mapping)]


def check_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Tasks run an image by digest, never by a tag that can move."""
    containers = _containers(args.props.get("containerDefinitions"))
    if containers is None:
        return
    if not containers:
        report_violation("the task definition has no readable container definitions", None)
    for container in containers:
        image = container.get("image")
        if not DIGEST_REFERENCE.fullmatch(str(image)):
            report_violation(
                f"container {container.get('name')!r} runs image {image!r}; pin it by digest "
                "(<repository>@sha256:<64 hex>), never by tag",
                None,
            )


def check_no_public_ip(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Tasks are reached through the load balancer only: no public IP."""
    network = args.props.get("networkConfiguration") or {}
    if network.get("assignPublicIp") is True:
        report_violation(
            "networkConfiguration.assignPublicIp is true; tasks must have no public IP", None
        )


def check_safe_deployment(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A failed deployment rolls back by itself and fails `pulumi up`; capacity never drops."""
    breaker = args.props.get("deploymentCircuitBreaker") or {}
    if breaker.get("enable") is not True or breaker.get("rollback") is not True:
        report_violation(
            f"deploymentCircuitBreaker is {dict(breaker) or 'missing'}; set enable and rollback "
            "to true so a failed deployment rolls back",
            None,
        )
    healthy = args.props.get("deploymentMinimumHealthyPercent")
    if not isinstance(healthy, (int, float)) or healthy < 100:
        report_violation(f"deploymentMinimumHealthyPercent is {healthy!r}; use 100 or more", None)
    if args.props.get("waitForSteadyState") is not True:
        report_violation(
            "waitForSteadyState must be true, or a failed deployment does not fail `pulumi up`",
            None,
        )


def readiness_problem(health_check: Any) -> str | None:
    """What is wrong with a target group's health check, or None if it checks /readyz."""
    check = health_check if isinstance(health_check, Mapping) else {}
    if check.get("enabled") is False:
        return "its health check is disabled"
    if check.get("path") != READINESS_PATH:
        return f"its health check path is {check.get('path')!r}, not {READINESS_PATH!r}"
    return None


def check_target_health(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Targets are in service only while /readyz says the model is loaded."""
    problem = readiness_problem(args.props.get("healthCheck"))
    if problem is not None:
        report_violation(f"target group: {problem}", None)


def _count(value: Any) -> int | None:
    """A whole number as the engine sends it (numbers arrive as floats), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value)


def check_scaling_bounded(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Autoscaling has a floor of at least one task and a ceiling no typo can lift."""
    low = _count(args.props.get("minCapacity"))
    high = _count(args.props.get("maxCapacity"))
    if high is None or not 1 <= high <= MAX_TASKS_LIMIT:
        report_violation(
            f"maxCapacity is {args.props.get('maxCapacity')!r}; expected 1 to {MAX_TASKS_LIMIT}",
            None,
        )
    if low is None or low < 1 or (high is not None and low > high):
        report_violation(
            f"minCapacity is {args.props.get('minCapacity')!r}; expected 1 to maxCapacity "
            f"({args.props.get('maxCapacity')!r})",
            None,
        )


def _forwarded_target_groups(listener: Any) -> list[str]:
    arns = []
    for action in _as_list(listener.props.get("defaultActions")):
        if not isinstance(action, Mapping):
            continue
        if action.get("targetGroupArn"):
            arns.append(str(action["targetGroupArn"]))
        forward = action.get("forward") or {}
        arns += [str(g.get("arn")) for g in _as_list(forward.get("targetGroups")) if g.get("arn")]
    return arns


def check_load_balancer_health(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    """Every load balancer sends traffic only to target groups that check /readyz."""
    groups = {str(r.props.get("arn")): r for r in args.resources if r.resource_type == TARGET_GROUP}
    listeners = [r for r in args.resources if r.resource_type == LISTENER]
    for balancer in (r for r in args.resources if r.resource_type == LOAD_BALANCER):
        arn = str(balancer.props.get("arn"))
        forwarded = [
            group
            for listener in listeners
            if str(listener.props.get("loadBalancerArn")) == arn
            for group in _forwarded_target_groups(listener)
        ]
        if not forwarded:
            report_violation(
                f"load balancer {balancer.name} forwards to no target group, so nothing checks "
                f"{READINESS_PATH}",
                balancer.urn,
            )
        for group_arn in forwarded:
            group = groups.get(group_arn)
            problem = (
                "is not in this stack"
                if group is None
                else readiness_problem(group.props.get("healthCheck"))
            )
            if problem is not None:
                report_violation(
                    f"load balancer {balancer.name} forwards to target group {group_arn}: "
                    f"{problem}",
                    balancer.urn,
                )


def check_services_autoscaled(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every ECS service has a scalable target (which autoscaling-bounded keeps bounded)."""
    scaled = {
        str(r.props.get("resourceId"))
        for r in args.resources
        if r.resource_type == SCALING_TARGET and r.props.get("serviceNamespace") == "ecs"
    }
    for service in (r for r in args.resources if r.resource_type == ECS_SERVICE):
        cluster = str(service.props.get("cluster", "")).rsplit("/", 1)[-1]
        resource_id = f"service/{cluster}/{service.props.get('name')}"
        if resource_id not in scaled:
            report_violation(
                f"ECS service {resource_id} has no scalable target: set its min and max tasks",
                service.urn,
            )


RESOURCE_RULES.update(
    {
        "ecs-image-pinned-by-digest": (
            TASK_DEFINITION,
            "Tasks run images pinned by digest.",
            check_image_pinned,
        ),
        "ecs-no-public-ip": (ECS_SERVICE, "Tasks get no public IP.", check_no_public_ip),
        "ecs-deployment-rolls-back": (
            ECS_SERVICE,
            "Deployments keep capacity, roll back on failure and fail `pulumi up`.",
            check_safe_deployment,
        ),
        "lb-target-health-readyz": (
            TARGET_GROUP,
            "Target groups check /readyz.",
            check_target_health,
        ),
        "autoscaling-bounded": (
            SCALING_TARGET,
            f"Autoscaling is bounded: 1 <= min <= max <= {MAX_TASKS_LIMIT}.",
            check_scaling_bounded,
        ),
    }
)
STACK_RULES.update(
    {
        "lb-health-check-readyz": (
            "Every load balancer forwards to target groups that check /readyz.",
            check_load_balancer_health,
        ),
        "ecs-service-autoscaled": (
            "Every ECS service has a bounded scalable target.",
            check_services_autoscaled,
        ),
    }
)
