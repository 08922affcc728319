"""The S3 data path against a real S3 endpoint over HTTP (moto_server on 127.0.0.1).

Covers: upload and fetch round trips, atomic landing, md5 recording and checking, multipart for
large files, retries of transient errors, the four named failures (bucket missing, object missing,
credentials rejected, endpoint unreachable) leaving nothing behind, and the CLI commands
(upload refusing data that would fail training, fetch, use-s3-remote).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.cloud_cli import app
from ml.data import generate_dataset
from ml.s3 import (
    MULTIPART_CHUNKSIZE,
    BucketMissingError,
    CredentialsRejectedError,
    EndpointUnreachableError,
    ObjectMissingError,
    S3Client,
    S3DataError,
    dvc_remote_url,
    fetch_dataset,
    make_client,
    new_data_url,
    parse_s3_url,
    retry_settings,
    upload_dataset,
)
from tests.moto_server import (
    AWS_VARIABLES_TO_CLEAR,
    TEST_CREDENTIALS,
    FaultyProxy,
    MotoServer,
    free_port,
)

BUCKET = "predict-buy-test"
URL = f"s3://{BUCKET}/new_ML_data/"
REPO_ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and no AWS profile, endpoint or retry setting from the machine."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def s3(moto: MotoServer, aws_env: None) -> MotoServer:
    """An empty S3 for this test."""
    moto.reset()
    return moto


@pytest.fixture
def client(s3: MotoServer) -> S3Client:
    return make_client(s3.url)


@pytest.fixture
def bucket(client: S3Client) -> str:
    client.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small, valid dataset in the raw layout (synthetic, dirt included)."""
    folder = tmp_path_factory.mktemp("dataset")
    frame, _ = generate_dataset(1_500, seed=7)
    files = {"train.csv": folder / "train.csv", "test.csv": folder / "test.csv"}
    frame.iloc[:1_000].to_csv(files["train.csv"], index=False)
    frame.iloc[1_000:].to_csv(files["test.csv"], index=False)
    return files


@pytest.fixture
def uploaded(s3: MotoServer, bucket: str, dataset: dict[str, Path]) -> dict[str, Path]:
    upload_dataset(dataset, URL, endpoint_url=s3.url)
    return dataset


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A data folder that already holds an older dataset, which failures must leave untouched."""
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train.csv").write_text("old train\n")
    (folder / "test.csv").write_text("old test\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keys(client: S3Client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


# -- URLs and settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket_name", "prefix"),
    [
        ("s3://ce7-grp-1-bucket/new_ML_data/", "ce7-grp-1-bucket", "new_ML_data/"),
        ("s3://ce7-grp-1-bucket/new_ML_data", "ce7-grp-1-bucket", "new_ML_data/"),
        ("s3://my.bucket.1/a/b//", "my.bucket.1", "a/b/"),
        ("s3://abc", "abc", ""),
    ],
)
def test_parse_s3_url_splits_bucket_and_prefix(url: str, bucket_name: str, prefix: str) -> None:
    # when
    location = parse_s3_url(url)
    # then
    assert (location.bucket, location.prefix) == (bucket_name, prefix)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bucket/new_ML_data/", "not an S3 URL"),
        ("s3://Upper-Case/x/", "bucket name 'Upper-Case' is not valid"),
        ("s3://ab/x/", "bucket name 'ab' is not valid"),
        ("s3://a..b/x/", "bucket name 'a..b' is not valid"),
        ("s3:///new_ML_data/", "bucket name '' is not valid"),
    ],
)
def test_parse_s3_url_rejects_bad_urls_saying_what_is_allowed(url: str, expected: str) -> None:
    # when / then
    with pytest.raises(S3DataError, match=re.escape(expected)) as caught:
        parse_s3_url(url)
    assert "allowed" in str(caught.value) or "expected" in str(caught.value)


def test_remote_and_data_urls_follow_the_bucket_layout() -> None:
    assert new_data_url("ce7-grp-1-bucket") == "s3://ce7-grp-1-bucket/new_ML_data/"
    assert dvc_remote_url("ce7-grp-1-bucket") == "s3://ce7-grp-1-bucket/DVC_Artefacts"


def test_retries_default_to_standard_mode_and_honour_aws_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    # then
    assert retry_settings() == {"mode": "standard", "total_max_attempts": 5}
    assert retry_settings(2) == {"mode": "standard", "total_max_attempts": 2}
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert retry_settings() == {"mode": "adaptive", "total_max_attempts": 9}
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(S3DataError, match="AWS_MAX_ATTEMPTS='many': expected a whole number"):
        retry_settings()


# -- fetch and upload over HTTP ---------------------------------------------------------------


def test_fetch_brings_both_files_byte_for_byte_with_their_md5(
    s3: MotoServer, client: S3Client, uploaded: dict[str, Path], dest: Path
) -> None:
    # when
    digests = fetch_dataset(URL, dest, endpoint_url=s3.url)
    # then
    assert digests == {name: md5(path) for name, path in uploaded.items()}
    for name, path in uploaded.items():
        assert (dest / name).read_bytes() == path.read_bytes(), f"{name} differs from the upload"
    assert sorted(p.name for p in dest.iterdir()) == ["test.csv", "train.csv"], "temp files left"
    head = client.head_object(Bucket=BUCKET, Key="new_ML_data/train.csv")
    assert head["Metadata"]["md5"] == digests["train.csv"], "upload did not record the md5"


def test_fetch_creates_the_destination_folder(
    s3: MotoServer, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    # when
    fetch_dataset(URL, tmp_path / "a" / "b", endpoint_url=s3.url)
    # then
    assert (tmp_path / "a" / "b" / "test.csv").read_bytes() == uploaded["test.csv"].read_bytes()


def test_the_endpoint_can_come_from_aws_endpoint_url_s3(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: no endpoint argument, the standard variable instead
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
    # when
    digests = fetch_dataset(URL, dest)
    # then
    assert digests["test.csv"] == md5(uploaded["test.csv"])


def test_fetch_refuses_an_object_whose_content_does_not_match_its_recorded_md5(
    s3: MotoServer, client: S3Client, bucket: str, dest: Path
) -> None:
    # given: train.csv whose recorded md5 is not the md5 of its bytes
    before = snapshot(dest)
    client.put_object(
        Bucket=bucket, Key="new_ML_data/train.csv", Body=b"id\n1\n", Metadata={"md5": "0" * 32}
    )
    client.put_object(Bucket=bucket, Key="new_ML_data/test.csv", Body=b"id\n2\n")
    # when / then
    with pytest.raises(S3DataError, match="checksum mismatch: s3://predict-buy-test/new_ML_data/"):
        fetch_dataset(URL, dest, endpoint_url=s3.url)
    assert snapshot(dest) == before, "a failed fetch changed the destination folder"


@pytest.mark.slow
def test_a_50_mb_file_goes_up_and_down_in_multipart(
    s3: MotoServer, client: S3Client, bucket: str, dataset: dict[str, Path], tmp_path: Path
) -> None:
    # given: a 50 MiB train.csv
    big = tmp_path / "big.csv"
    big.write_bytes(hashlib.shake_256(b"predict-buy").digest(50 * 1024 * 1024))
    parts = -(-big.stat().st_size // MULTIPART_CHUNKSIZE)
    # when
    sent = upload_dataset(
        {"train.csv": big, "test.csv": dataset["test.csv"]}, URL, endpoint_url=s3.url
    )
    received = fetch_dataset(URL, tmp_path / "back", endpoint_url=s3.url)
    # then
    etag = client.head_object(Bucket=bucket, Key="new_ML_data/train.csv")["ETag"]
    assert re.fullmatch(rf'"[0-9a-f]{{32}}-{parts}"', etag), (
        f"ETag {etag} lacks the multipart suffix -{parts}: the upload was not multipart"
    )
    assert sent["train.csv"] == received["train.csv"] == md5(big)
    assert sha256(tmp_path / "back" / "train.csv") == sha256(big)


def test_transient_errors_are_retried_until_the_fetch_succeeds(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path
) -> None:
    with FaultyProxy(s3.url) as proxy:
        # given: the next two requests are throttled (503 SlowDown)
        proxy.fail_next(2, status=503, code="SlowDown")
        # when
        digests = fetch_dataset(URL, dest, endpoint_url=proxy.url)
    # then
    assert proxy.outcomes("failed") == 2, proxy.log
    assert digests["train.csv"] == md5(uploaded["train.csv"])


def test_a_body_cut_off_mid_download_is_fetched_again(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path
) -> None:
    with FaultyProxy(s3.url) as proxy:
        # given: the first download's body breaks off halfway
        proxy.cut_next(1)
        # when
        fetch_dataset(URL, dest, endpoint_url=proxy.url)
    # then
    assert proxy.outcomes("cut") == 1, proxy.log
    assert (dest / "train.csv").read_bytes() == uploaded["train.csv"].read_bytes()


def test_errors_that_outlast_the_retries_fail_with_the_attempt_count_and_leave_nothing(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path
) -> None:
    before = snapshot(dest)
    with FaultyProxy(s3.url) as proxy:
        # given: the server keeps answering 503
        proxy.fail_next(50, status=503, code="SlowDown")
        # when / then
        with pytest.raises(S3DataError, match="after 2 attempts") as caught:
            fetch_dataset(URL, dest, endpoint_url=proxy.url, max_attempts=2)
    assert proxy.outcomes("failed") == 2, "max_attempts=2 should mean exactly two requests"
    assert "503" in str(caught.value)
    assert snapshot(dest) == before, "a failed fetch changed the destination folder"


def test_a_body_that_keeps_breaking_off_fails_and_leaves_nothing(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path
) -> None:
    before = snapshot(dest)
    with FaultyProxy(s3.url) as proxy:
        proxy.cut_next(100)
        with pytest.raises(S3DataError, match="S3 transfer failed: could not read") as caught:
            fetch_dataset(URL, dest, endpoint_url=proxy.url)
    assert "last error:" in str(caught.value), "the message should carry the underlying error"
    assert proxy.outcomes("cut") > 1, "the download was not retried"
    assert snapshot(dest) == before, "a partial file was left behind"


# -- the four named failures ------------------------------------------------------------------


def test_missing_bucket_fails_saying_so_and_leaves_nothing(s3: MotoServer, dest: Path) -> None:
    before = snapshot(dest)
    # when / then
    with pytest.raises(BucketMissingError, match=r"bucket missing: s3://no-such-bucket does not"):
        fetch_dataset("s3://no-such-bucket/new_ML_data/", dest, endpoint_url=s3.url)
    assert snapshot(dest) == before, "a failed fetch changed the destination folder"


def test_missing_object_fails_naming_the_key_and_keeps_the_other_file_out(
    s3: MotoServer, client: S3Client, bucket: str, dataset: dict[str, Path], dest: Path
) -> None:
    # given: train.csv arrived, test.csv did not
    before = snapshot(dest)
    client.upload_file(str(dataset["train.csv"]), bucket, "new_ML_data/train.csv")
    # when / then
    with pytest.raises(ObjectMissingError) as caught:
        fetch_dataset(URL, dest, endpoint_url=s3.url)
    message = str(caught.value)
    assert "object missing: key 'new_ML_data/test.csv' not found" in message, message
    assert "holds: train.csv" in message, "the message should say what the prefix does hold"
    assert snapshot(dest) == before, "train.csv landed although the dataset was incomplete"


def test_a_pair_from_different_uploads_is_refused_and_leaves_nothing(
    s3: MotoServer, uploaded: dict[str, Path], dest: Path
) -> None:
    # given: a later upload replaced train.csv only (it stopped before test.csv)
    before = snapshot(dest)
    upload_dataset({"train.csv": uploaded["train.csv"]}, URL, endpoint_url=s3.url)
    # when / then
    with pytest.raises(S3DataError, match=r"mixed dataset under s3://.*upload both files again"):
        fetch_dataset(URL, dest, endpoint_url=s3.url)
    assert snapshot(dest) == before, "a mixed pair must not land"
    # and a complete upload makes the pair whole again
    upload_dataset(uploaded, URL, endpoint_url=s3.url)
    assert sorted(fetch_dataset(URL, dest, endpoint_url=s3.url)) == ["test.csv", "train.csv"]


def test_unreachable_endpoint_fails_saying_so_and_leaves_nothing(aws_env: None, dest: Path) -> None:
    # given: a port nothing listens on
    endpoint = f"http://127.0.0.1:{free_port()}"
    before = snapshot(dest)
    # when / then
    with pytest.raises(EndpointUnreachableError, match="endpoint unreachable") as caught:
        fetch_dataset(URL, dest, endpoint_url=endpoint, max_attempts=2)
    assert endpoint in str(caught.value) and "after 2 attempts" in str(caught.value)
    assert snapshot(dest) == before


def test_missing_credentials_fail_saying_so(
    s3: MotoServer, monkeypatch: pytest.MonkeyPatch, dest: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsRejectedError, match="credentials rejected: no usable AWS"):
        fetch_dataset(URL, dest, endpoint_url=s3.url)


ALLOW_S3 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, dict]]:
    """moto_server that checks credentials (IAM) after its first six requests.

    Those six set it up: a bucket, an IAM user allowed s3:* with an access key, and a second user
    with a key but no permission at all. Returns the server and {user: access key}.
    """
    import boto3

    log_dir = tmp_path_factory.mktemp("moto-auth")
    with MotoServer(log_dir, {"INITIAL_NO_AUTH_ACTION_COUNT": "6"}) as server:
        session = boto3.session.Session(
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",  # noqa: S106 (accepted only before auth starts)
            region_name="us-east-1",
        )
        session.client("s3", endpoint_url=server.url).create_bucket(Bucket=BUCKET)
        iam = session.client("iam", endpoint_url=server.url)
        iam.create_user(UserName="uploader")
        iam.put_user_policy(UserName="uploader", PolicyName="s3", PolicyDocument=ALLOW_S3)
        iam.create_user(UserName="nobody")
        keys = {
            user: iam.create_access_key(UserName=user)["AccessKey"]
            for user in ("uploader", "nobody")
        }
        yield server, keys


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ("unknown key", "InvalidAccessKeyId"),
        ("wrong secret", "SignatureDoesNotMatch"),
        ("no permission", "AccessDenied"),
    ],
)
def test_wrong_credentials_fail_saying_so_and_leave_nothing(
    auth_moto: tuple[MotoServer, dict],
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    dataset: dict[str, Path],
    dest: Path,
    credentials: str,
    code: str,
) -> None:
    server, keys = auth_moto
    # given: the dataset uploaded with valid credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["uploader"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["uploader"]["SecretAccessKey"])
    upload_dataset(dataset, URL, endpoint_url=server.url)
    before = snapshot(dest)
    # when: fetched with an unknown key, a wrong secret, or a user without permission
    if credentials == "unknown key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    if credentials == "no permission":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["nobody"]["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["nobody"]["SecretAccessKey"])
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(CredentialsRejectedError) as caught:
        fetch_dataset(URL, dest, endpoint_url=server.url)
    # then
    assert f"credentials rejected: {server.url} refused to read s3://" in str(caught.value)
    assert code in str(caught.value), str(caught.value)
    assert snapshot(dest) == before


def test_upload_with_wrong_credentials_fails_saying_so(
    auth_moto: tuple[MotoServer, dict], aws_env: None, dataset: dict[str, Path]
) -> None:
    server, _ = auth_moto
    with pytest.raises(CredentialsRejectedError, match="InvalidAccessKeyId"):
        upload_dataset(dataset, URL, endpoint_url=server.url)


def test_upload_to_a_missing_bucket_fails_before_sending(
    s3: MotoServer, dataset: dict[str, Path]
) -> None:
    with pytest.raises(BucketMissingError, match="bucket missing: s3://predict-buy-test does"):
        upload_dataset(dataset, URL, endpoint_url=s3.url)


# -- CLI: upload, fetch -----------------------------------------------------------------------


def test_cli_upload_checks_then_sends_and_fetch_brings_it_back(
    s3: MotoServer, client: S3Client, bucket: str, dataset: dict[str, Path], tmp_path: Path
) -> None:
    # given: params.yaml pointing at the bucket, as `data-source` writes it
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  source: {URL}\n  s3_endpoint_url: {s3.url}\n")
    train, test = str(dataset["train.csv"]), str(dataset["test.csv"])
    # when
    sent = runner.invoke(app, ["upload", train, test, "--params", str(params)])
    back = runner.invoke(app, ["fetch", "--dest", str(tmp_path / "back"), "--params", str(params)])
    # then
    assert sent.exit_code == 0, sent.output
    assert re.search(r"train\.csv \(.*\): 1,000 rows, \d[\d,]* usable", sent.output), sent.output
    assert f"uploaded test.csv to {URL}test.csv (md5 {md5(dataset['test.csv'])})" in sent.output
    assert sorted(keys(client, bucket)) == ["new_ML_data/test.csv", "new_ML_data/train.csv"]
    assert back.exit_code == 0, back.output
    assert f"train.csv: md5 {md5(dataset['train.csv'])}" in back.output
    assert (tmp_path / "back" / "test.csv").read_bytes() == dataset["test.csv"].read_bytes()


HEADER = "id,Gender,Age,HasDrivingLicense,RegionID,Switch,VehicleAge,PastAccident,AnnualPremium,SalesChannelID,DaysSinceCreated,Result"  # noqa: E501 (one CSV line)
ROW = '{id},Male,43.0,1.0,29.0,0.0,1-2 Year,Yes,"£1,561.90 ",26,133,{result}'


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "file is empty"),
        (HEADER + "\n", "has a header but no data rows"),
        (HEADER.replace(",", ";") + "\n1;Male\n", "wrong delimiter"),
        (HEADER.replace(",Age", "") + "\n", "missing columns ['Age']"),
        (
            "\n".join([HEADER] + [ROW.format(id=i, result=0) for i in range(1, 30)]) + "\n",
            "both 0 and 1 are needed",
        ),
        ("\n".join([HEADER, ROW.format(id=1, result=7)]) + "\n", "no usable rows"),
    ],
    ids=["empty", "header-only", "semicolons", "missing-column", "single-class", "no-usable-row"],
)
def test_cli_upload_refuses_files_that_would_fail_training_before_sending_a_byte(
    s3: MotoServer,
    client: S3Client,
    bucket: str,
    dataset: dict[str, Path],
    tmp_path: Path,
    content: str,
    problem: str,
) -> None:
    # given: a bad test.csv and a train.csv with a missing column
    bad_test = tmp_path / "test.csv"
    bad_test.write_text(content, encoding="utf-8")
    bad_train = tmp_path / "train.csv"
    bad_train.write_text(HEADER.replace(",Gender", "") + "\n")
    # when
    result = runner.invoke(
        app, ["upload", str(bad_train), str(bad_test), "--bucket", bucket, "--endpoint-url", s3.url]
    )
    # then
    assert result.exit_code == 3, result.output
    assert "refused: 2 of 2 files would fail training; nothing was uploaded" in result.output
    assert problem in result.output, result.output
    assert "missing columns ['Gender']" in result.output, "every file's problems are listed"
    assert keys(client, bucket) == [], "an object was uploaded although the data was refused"


def test_cli_upload_to_a_missing_bucket_exits_1_saying_so(
    s3: MotoServer, dataset: dict[str, Path]
) -> None:
    train, test = str(dataset["train.csv"]), str(dataset["test.csv"])
    result = runner.invoke(
        app, ["upload", train, test, "--bucket", "no-such-bucket", "--endpoint-url", s3.url]
    )
    assert result.exit_code == 1, result.output
    assert "upload: bucket missing: s3://no-such-bucket does not exist" in result.output


def test_cli_fetch_of_a_missing_object_exits_1_naming_the_key(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["fetch", "--dest", str(tmp_path), "--bucket", bucket, "--endpoint-url", s3.url]
    )
    assert result.exit_code == 1, result.output
    assert "key 'new_ML_data/train.csv' not found" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--bucket", "b-1", "--url", "s3://b-1/x/"], "give --bucket or --url, not both"),
        ([], "no S3 location: give --bucket NAME"),
        (["--url", "http://b-1/x/"], "not an S3 URL"),
    ],
)
def test_cli_fetch_needs_exactly_one_location(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    # given: params.yaml with the synthetic source, so it names no bucket
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  source: synthetic\n")
    # when
    result = runner.invoke(
        app, ["fetch", "--dest", str(tmp_path), "--params", str(params), *arguments]
    )
    # then
    assert result.exit_code in (1, 2), result.output
    assert message in " ".join(result.output.split()), result.output


# -- CLI: use-s3-remote -----------------------------------------------------------------------


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A folder with the project's committed DVC config (remotes `local` and `s3`)."""
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_bytes((REPO_ROOT / ".dvc" / "config").read_bytes())
    return repo


def dvc_config(repo: Path, level: str | None = None) -> dict:
    from dvc.config import Config

    return Config(dvc_dir=str(repo / ".dvc")).read(level)


def test_use_s3_remote_writes_config_local_only(dvc_repo: Path) -> None:
    # given
    committed = (dvc_repo / ".dvc" / "config").read_bytes()
    endpoint = "http://127.0.0.1:9000"
    # when
    result = runner.invoke(
        app,
        [
            *("use-s3-remote", "--bucket", "team-bucket", "--endpoint-url", endpoint),
            *("--default", "--repo", str(dvc_repo)),
        ],
    )
    # then
    assert result.exit_code == 0, result.output
    merged = dvc_config(dvc_repo)
    assert merged["remote"]["s3"]["url"] == "s3://team-bucket/DVC_Artefacts"
    assert merged["remote"]["s3"]["endpointurl"] == endpoint
    assert merged["core"]["remote"] == "s3"
    assert merged["remote"]["local"]["url"].endswith(".dvc-storage"), "other remotes are kept"
    assert (dvc_repo / ".dvc" / "config").read_bytes() == committed, "committed config changed"
    assert "team-bucket" in (dvc_repo / ".dvc" / "config.local").read_text()


def test_use_s3_remote_again_drops_a_stale_endpoint_and_default(dvc_repo: Path) -> None:
    # given: a clone pointed at a local test server first
    first = ["use-s3-remote", "--bucket", "b-1", "--endpoint-url", "http://127.0.0.1:9000"]
    runner.invoke(app, [*first, "--default", "--repo", str(dvc_repo)])
    # when: pointed at AWS
    second = ["use-s3-remote", "--bucket", "b-2", "--region", "eu-west-2", "--no-default"]
    result = runner.invoke(app, [*second, "--repo", str(dvc_repo)])
    # then
    assert result.exit_code == 0, result.output
    merged = dvc_config(dvc_repo)
    # verify comes from the committed .dvc/config: pulls re-hash what they download
    assert merged["remote"]["s3"] == {
        "url": "s3://b-2/DVC_Artefacts",
        "region": "eu-west-2",
        "verify": "true",
    }
    assert merged["core"]["remote"] == "local", "the committed default should apply again"


def test_use_s3_remote_reads_the_bucket_from_the_nonprod_stack_outputs(
    dvc_repo: Path, tmp_path: Path
) -> None:
    # given: `pulumi stack output --json --stack nonprod > outputs.json`
    outputs = {"bucketName": "ce7-grp-1-bucket-a1b2c3", "dvcRemoteUrl": "s3://x/DVC_Artefacts"}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    # when: from a file, and from stdin
    from_file = runner.invoke(
        app,
        [
            *("use-s3-remote", "--stack-outputs", str(tmp_path / "outputs.json")),
            *("--repo", str(dvc_repo)),
        ],
    )
    from_stdin = runner.invoke(
        app,
        ["use-s3-remote", "--stack-outputs", "-", "--repo", str(dvc_repo)],
        input=json.dumps({**outputs, "bucketName": "from-stdin"}),
    )
    # then
    assert from_file.exit_code == 0, from_file.output
    assert "s3://ce7-grp-1-bucket-a1b2c3/DVC_Artefacts" in from_file.output
    assert from_stdin.exit_code == 0, from_stdin.output
    assert dvc_config(dvc_repo)["remote"]["s3"]["url"] == "s3://from-stdin/DVC_Artefacts"


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        ([], None, "name the bucket once"),
        (["--bucket", "b-1", "--stack-outputs", "-"], None, "name the bucket once"),
        (["--stack-outputs", "-"], '{"repositoryUrl": "x"}', "no string output 'bucketName'"),
        (["--stack-outputs", "-"], "not json", "stdin: not JSON"),
        (["--bucket", "Bad_Bucket"], None, "bucket name 'Bad_Bucket' is not valid"),
    ],
)
def test_use_s3_remote_rejects_unclear_buckets(
    dvc_repo: Path, arguments: list[str], stdin: str | None, message: str
) -> None:
    result = runner.invoke(app, ["use-s3-remote", *arguments, "--repo", str(dvc_repo)], input=stdin)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (dvc_repo / ".dvc" / "config.local").exists(), "config written despite the error"


def test_use_s3_remote_outside_a_dvc_repository_fails_saying_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["use-s3-remote", "--bucket", "b-1", "--repo", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "not a DVC repository" in result.output
