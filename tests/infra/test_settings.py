"""Stack config validation: each key's error names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from infra.errors import StackConfigError
from infra.settings import NonprodSettings, ProdSettings, read_settings


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
        bucket_name="ce7-grp-1-bucket",
        image_retention_days=15,
        keep_releases=10,
        noncurrent_version_days=30,
        github_oidc=None,
    )
    assert settings.repository_name == "ce7-grp-1/nonprod/predict_buy_app"


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
        ("prod", {"sourceStack": "a/b/c"}, "version is required on stack prod"),
        ("prod", {"version": "0.1.0"}, "sourceStack is required"),
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
