"""Stack settings: read `pulumi config` (namespace predict-buy), validate each key, type them.

The program entry calls `read_settings` once; components never read config themselves. Each error
names the key, the value it got and what is allowed, or the `pulumi config set` that fixes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import semver

from infra.errors import InfraError, StackConfigError

PROJECT: Final = "predict-buy"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
APP_NAME: Final = "predict_buy_app"
NONPROD: Final = "nonprod"
PROD: Final = "prod"
STACKS: Final = (NONPROD, PROD)

DEFAULT_NAME_PREFIX: Final = "ce7-grp-1"
# The original project's bucket; it belongs to that project's account, so it is never a default:
# an account that sets no bucketName gets `default_bucket_name` (unique per account and region).
ORIGINAL_BUCKET_NAME: Final = "ce7-grp-1-bucket"
DEFAULT_RETENTION_DAYS: Final = {NONPROD: 15, PROD: 30}
DEFAULT_KEEP_RELEASES: Final = 10
DEFAULT_NONCURRENT_VERSION_DAYS: Final = 30
DEFAULT_DEPLOY_BRANCH: Final = "main"

# ECR repository names are path segments of lowercase alphanumerics separated by . _ or -.
_NAME_PREFIX = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_STACK_REFERENCE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# Tags every AWS resource carries through the provider's default tags (aws:defaultTags).
REQUIRED_DEFAULT_TAGS: Final = ("Project", "Owner", "CostCenter")


class ConfigSource(Protocol):
    """The part of `pulumi.Config` the settings need (tests pass a dict-backed stand-in)."""

    def get(self, key: str, default: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class GithubOidcSettings:
    """GitHub Actions OIDC: which repository may assume the roles, and from which branch."""

    repository: str
    create_provider: bool
    deploy_branch: str


@dataclass(frozen=True)
class NonprodSettings:
    """Stack nonprod: the data bucket, the nonprod repository and the image it publishes."""

    name_prefix: str
    # None: not configured; the entry derives `default_bucket_name` from the account and region.
    bucket_name: str | None
    image_retention_days: int
    keep_releases: int
    noncurrent_version_days: int
    github_oidc: GithubOidcSettings | None
    # False: bring the stack up without a model and without an image (an empty account's first
    # run, before anything was trained); the bucket, repository and roles are created.
    publish: bool = True

    @property
    def repository_name(self) -> str:
        return repository_name(self.name_prefix, NONPROD)


@dataclass(frozen=True)
class ProdSettings:
    """Stack prod: the prod repository and the release it promotes from `source_stack`."""

    name_prefix: str
    image_retention_days: int
    keep_releases: int
    # None: nothing promoted yet (an empty account's first run creates the repository only).
    version: str | None
    # None: `<current organization>/<current project>/nonprod` (see `source_stack_for`).
    source_stack: str | None
    rollback: bool

    @property
    def repository_name(self) -> str:
        return repository_name(self.name_prefix, PROD)


def repository_name(name_prefix: str, stack: str) -> str:
    """`<prefix>/<stack>/predict_buy_app`: the names users' scripts already pull from."""
    return f"{name_prefix}/{stack}/{APP_NAME}"


def default_bucket_name(name_prefix: str, account_id: str, region: str) -> str:
    """`<prefix>-data-<account id>-<region>`: a name no other account can already hold."""
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise StackConfigError(f"AWS account id {account_id!r} is not 12 digits")
    name = f"{name_prefix}-data-{account_id}-{region}".replace("_", "-").replace(".", "-")
    if len(name) > 63 or not _BUCKET_NAME.fullmatch(name):
        raise StackConfigError(
            f"config {PROJECT}:bucketName is not set and the derived name {name!r} is not a valid "
            "S3 bucket name (3-63 lowercase letters, digits, dots or hyphens); "
            f"{_fix('bucketName', '<globally-unique-name>')}"
        )
    return name


def source_stack_for(organization: str, project: str) -> str:
    """The nonprod stack of this organization and project: prod's default `sourceStack`."""
    return f"{organization}/{project}/{NONPROD}"


def check_default_tags(value: Any) -> dict[str, str]:
    """aws:defaultTags must give every resource the cost and owner tags; return the tags."""
    example = '{"tags": {"Project": "predict-buy", "Owner": "<team>", "CostCenter": "<code>"}}'
    tags = value.get("tags") if isinstance(value, dict) else None
    if not isinstance(tags, dict):
        raise StackConfigError(
            f"config aws:defaultTags is {value!r}: every resource needs the tags "
            f"{', '.join(REQUIRED_DEFAULT_TAGS)} through the provider's default tags; set it in "
            f"the stack file as `aws:defaultTags: {example}`"
        )
    missing = [key for key in REQUIRED_DEFAULT_TAGS if not str(tags.get(key) or "").strip()]
    if missing:
        raise StackConfigError(
            f"config aws:defaultTags.tags has no {', '.join(missing)}: every resource needs "
            f"{', '.join(REQUIRED_DEFAULT_TAGS)} (cost and owner); add them, e.g. {example}"
        )
    return {str(key): str(tag) for key, tag in tags.items()}


def _fix(key: str, example: str) -> str:
    return f"set it with `pulumi config set {PROJECT}:{key} {example}`"


def _string(
    config: ConfigSource, key: str, default: str | None, pattern: re.Pattern[str], allowed: str
) -> str:
    raw = config.get(key)
    if raw is None:
        if default is None:
            raise StackConfigError(
                f"config {PROJECT}:{key} is required ({allowed}); {_fix(key, '<value>')}"
            )
        return default
    value = raw.strip()
    if not pattern.fullmatch(value):
        raise StackConfigError(
            f"config {PROJECT}:{key} is {raw!r}: not allowed; expected {allowed}"
        )
    return value


def read_integer(config: ConfigSource, key: str, default: int, low: int, high: int) -> int:
    """A whole number from `low` to `high` (the default when unset); the error names the key."""
    raw = config.get(key)
    if raw is None:
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise StackConfigError(
            f"config {PROJECT}:{key} is {raw!r}: not a whole number; "
            f"expected an integer from {low} to {high}"
        ) from None
    if not low <= value <= high:
        raise StackConfigError(
            f"config {PROJECT}:{key} is {value}: out of range; expected {low} to {high}"
        )
    return value


def read_boolean(config: ConfigSource, key: str, default: bool) -> bool:
    """`true` or `false` (the default when unset); the error names the key."""
    raw = config.get(key)
    if raw is None:
        return default
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise StackConfigError(f"config {PROJECT}:{key} is {raw!r}: expected true or false")
    return value == "true"


def parse_version(raw: str, where: str, error: type[InfraError] = StackConfigError) -> str:
    """A SemVer release `MAJOR.MINOR.PATCH[-pre]`; a leading `v` is accepted and dropped."""
    text = raw.strip()
    candidate = text[1:] if text.startswith("v") else text
    try:
        parsed = semver.Version.parse(candidate)
    except ValueError:
        raise error(
            f"{where} is {raw!r}: not a SemVer version; expected MAJOR.MINOR.PATCH such as 0.1.0"
        ) from None
    if parsed.build is not None:
        # Image tags allow [A-Za-z0-9_.-] only, so `+build` metadata cannot become `v<version>`.
        raise error(
            f"{where} is {raw!r}: SemVer build metadata (+{parsed.build}) cannot be part of an "
            "image tag; use MAJOR.MINOR.PATCH or a pre-release such as 0.2.0-rc.1"
        )
    return candidate


def _bucket_name(config: ConfigSource) -> str | None:
    if config.get("bucketName") is None:
        return None
    allowed = "3-63 lowercase letters, digits, dots or hyphens, starting and ending alphanumeric"
    name = _string(config, "bucketName", None, _BUCKET_NAME, allowed)
    if ".." in name or _IP_ADDRESS.fullmatch(name):
        raise StackConfigError(
            f"config {PROJECT}:bucketName is {name!r}: S3 forbids '..' and IP-address names"
        )
    return name


def _github_oidc(config: ConfigSource) -> GithubOidcSettings | None:
    if not read_boolean(config, "githubOidc", default=False):
        return None
    if config.get("githubRepository") is None:
        raise StackConfigError(
            f"config {PROJECT}:githubRepository is required when {PROJECT}:githubOidc is true "
            f"(the roles trust only that repository); {_fix('githubRepository', 'owner/name')}"
        )
    repository = _string(
        config, "githubRepository", None, _GITHUB_REPOSITORY, "a GitHub repository as owner/name"
    )
    branch = _string(
        config, "githubDeployBranch", DEFAULT_DEPLOY_BRANCH, _BRANCH, "a branch name such as main"
    )
    return GithubOidcSettings(
        repository=repository,
        create_provider=read_boolean(config, "createOidcProvider", default=False),
        deploy_branch=branch.removeprefix("refs/heads/"),
    )


def read_settings(config: ConfigSource, stack: str) -> NonprodSettings | ProdSettings:
    """Validate the stack's config; the stack name decides which settings apply."""
    if stack not in STACKS:
        raise StackConfigError(
            f"stack {stack!r} is not known: this program has stacks {', '.join(STACKS)} "
            "(nonprod builds and publishes, prod promotes)"
        )
    name_prefix = _string(
        config,
        "namePrefix",
        DEFAULT_NAME_PREFIX,
        _NAME_PREFIX,
        "lowercase letters and digits, optionally separated by single '.', '_' or '-'",
    )
    retention = read_integer(config, "imageRetentionDays", DEFAULT_RETENTION_DAYS[stack], 1, 3650)
    keep = read_integer(config, "keepReleases", DEFAULT_KEEP_RELEASES, 1, 1000)
    if stack == NONPROD:
        for key in ("version", "sourceStack", "rollback"):
            if config.get(key) is not None:
                raise StackConfigError(
                    f"config {PROJECT}:{key} is set on stack nonprod, which publishes the version "
                    "in pyproject.toml; remove it with "
                    f"`pulumi config rm {PROJECT}:{key} --stack nonprod`"
                )
        return NonprodSettings(
            name_prefix=name_prefix,
            bucket_name=_bucket_name(config),
            image_retention_days=retention,
            keep_releases=keep,
            noncurrent_version_days=read_integer(
                config, "noncurrentVersionDays", DEFAULT_NONCURRENT_VERSION_DAYS, 1, 3650
            ),
            github_oidc=_github_oidc(config),
            publish=read_boolean(config, "publish", default=True),
        )
    if read_boolean(config, "githubOidc", default=False):
        raise StackConfigError(
            f"config {PROJECT}:githubOidc is set on stack prod; the GitHub roles are created once, "
            "by stack nonprod (they already cover the prod repository): set it there instead"
        )
    if config.get("publish") is not None:
        raise StackConfigError(
            f"config {PROJECT}:publish is set on stack prod, which never builds; remove it with "
            f"`pulumi config rm {PROJECT}:publish --stack prod`"
        )
    raw_version = config.get("version")
    rollback = read_boolean(config, "rollback", default=False)
    if raw_version is None and rollback:
        raise StackConfigError(
            f"config {PROJECT}:rollback is true but {PROJECT}:version is not set: a rollback "
            f"needs the release to go back to; {_fix('version', '0.1.0')}"
        )
    source_stack = None
    if config.get("sourceStack") is not None:
        source_stack = _string(
            config,
            "sourceStack",
            None,
            _STACK_REFERENCE,
            "the nonprod stack as organization/project/stack, e.g. my-org/predict-buy/nonprod "
            "(leave it unset to use this organization's and project's nonprod)",
        )
    return ProdSettings(
        name_prefix=name_prefix,
        image_retention_days=retention,
        keep_releases=keep,
        version=None
        if raw_version is None
        else parse_version(raw_version, f"config {PROJECT}:version"),
        source_stack=source_stack,
        rollback=rollback,
    )
