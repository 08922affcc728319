"""Stack config validation: each key's error names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from infra.errors import StackConfigError
from infra.settings import (
    NonprodSettings,
    ProdSettings,
    check_default_tags,
    default_bucket_name,
    read_settings,
    source_stack_for,
)


class DictConfig:
    """pulumi.Config's `get`, answered from a dict of unprefixed keys."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


PROD = {"version": "0.1.0", "sourceStack": "organization/predict-buy/nonprod"}


def test_nonprod_defaults_match_the_original_names() -> None:
    # given no config at all
    # when
    settings = read_settings(DictConfig({}), "nonprod")

    # then
    assert settings == NonprodSettings(
        name_prefix="ce7-grp-1",
        bucket_name=None,
        image_retention_days=15,
        keep_releases=10,
        noncurrent_version_days=30,
        github_oidc=None,
        publish=True,
    )
    assert settings.repository_name == "ce7-grp-1/nonprod/predict_buy_app"
    # and with no bucketName the entry derives one only this account can hold
    assert default_bucket_name("ce7-grp-1", "123456789012", "eu-west-2") == (
        "ce7-grp-1-data-123456789012-eu-west-2"
    )


def test_a_derived_bucket_name_that_cannot_exist_fails_naming_the_key() -> None:
    # given / when / then a prefix too long for S3's 63 characters
    with pytest.raises(StackConfigError, match="bucketName is not set and the derived name"):
        default_bucket_name("a" * 40, "123456789012", "eu-west-2")


def test_prod_source_stack_defaults_to_this_organizations_nonprod() -> None:
    # given no sourceStack and no version (an empty account's first prod run)
    settings = read_settings(DictConfig({}), "prod")

    # then nothing is promoted and the source follows the organization and project
    assert isinstance(settings, ProdSettings)
    assert settings.version is None and settings.source_stack is None
    assert source_stack_for("my-org", "predict-buy") == "my-org/predict-buy/nonprod"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "aws:defaultTags is None"),
        ({"tags": {"Project": "p", "Owner": " "}}, "has no Owner, CostCenter"),
    ],
)
def test_default_tags_need_cost_and_owner(value: object, expected: str) -> None:
    # given / when / then
    with pytest.raises(StackConfigError) as caught:
        check_default_tags(value)
    assert expected in str(caught.value), str(caught.value)
    tags = {"Project": "p", "Owner": "o", "CostCenter": "c"}
    assert check_default_tags({"tags": tags}) == tags


def test_prod_settings_and_defaults() -> None:
    # given / when
    settings = read_settings(DictConfig({**PROD, "version": "v1.2.3-rc.1"}), "prod")

    # then a leading v is accepted and dropped; prod keeps images 30 days
    assert settings == ProdSettings(
        name_prefix="ce7-grp-1",
        image_retention_days=30,
        keep_releases=10,
        version="1.2.3-rc.1",
        source_stack="organization/predict-buy/nonprod",
        rollback=False,
    )
    assert settings.repository_name == "ce7-grp-1/prod/predict_buy_app"


def test_github_oidc_settings() -> None:
    # given
    config = {
        "githubOidc": "true",
        "githubRepository": "acme/predict-buy",
        "createOidcProvider": "TRUE",
        "githubDeployBranch": "refs/heads/release",
    }

    # when
    settings = read_settings(DictConfig(config), "nonprod")

    # then
    assert isinstance(settings, NonprodSettings) and settings.github_oidc is not None
    assert settings.github_oidc.repository == "acme/predict-buy"
    assert settings.github_oidc.create_provider is True
    assert settings.github_oidc.deploy_branch == "release"


@pytest.mark.parametrize(
    ("stack", "config", "expected"),
    [
        ("nonprod", {"namePrefix": "CE7"}, "namePrefix is 'CE7': not allowed"),
        ("nonprod", {"namePrefix": "a--b"}, "namePrefix is 'a--b'"),
        ("nonprod", {"bucketName": "ab"}, "bucketName is 'ab': not allowed; expected 3-63"),
        ("nonprod", {"bucketName": "my..bucket"}, "forbids '..'"),
        ("nonprod", {"bucketName": "192.168.1.1"}, "IP-address"),
        ("nonprod", {"imageRetentionDays": "two"}, "imageRetentionDays is 'two': not a whole"),
        ("nonprod", {"imageRetentionDays": "0"}, "imageRetentionDays is 0: out of range"),
        ("nonprod", {"keepReleases": "5000"}, "keepReleases is 5000: out of range; expected 1"),
        ("nonprod", {"githubOidc": "yes"}, "githubOidc is 'yes': expected true or false"),
        ("nonprod", {"githubOidc": "true"}, "githubRepository is required when"),
        ("nonprod", {"githubOidc": "true", "githubRepository": "no-slash"}, "owner/name"),
        ("nonprod", {"sourceStack": "a/b/c"}, "sourceStack is set on stack nonprod"),
        ("prod", {"rollback": "true"}, "rollback is true but predict-buy:version is not set"),
        ("prod", {"publish": "false"}, "publish is set on stack prod"),
        ("prod", {**PROD, "version": "1"}, "'1': not a SemVer version"),
        ("prod", {**PROD, "version": "1.0.0+git.abc"}, "build metadata (+git.abc)"),
        ("prod", {**PROD, "sourceStack": "nonprod"}, "organization/project/stack"),
        ("prod", {**PROD, "rollback": "maybe"}, "rollback is 'maybe'"),
        ("prod", {**PROD, "githubOidc": "true"}, "by stack nonprod"),
        ("dev", {}, "stack 'dev' is not known"),
    ],
)
def test_invalid_config_is_refused_with_a_specific_message(
    stack: str, config: dict[str, str], expected: str
) -> None:
    # given / when / then
    with pytest.raises(StackConfigError) as caught:
        read_settings(DictConfig(config), stack)
    assert expected in str(caught.value), str(caught.value)
