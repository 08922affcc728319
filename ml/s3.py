"""The S3 data path: fetch new_ML_data/ into the data stage and upload checked datasets to it.

In the cloud, training data arrives as train.csv and test.csv under ``s3://<bucket>/new_ML_data/``.
The data stage fetches them with `fetch_dataset`; the `upload` command (ml/cloud_cli.py) sends them
with `upload_dataset` after checking them against the feature contract. Any S3-compatible endpoint
works (AWS, MinIO, LocalStack, moto_server): pass ``endpoint_url``.

Exceptions raised here, all with a message that says which of them happened and what to check::

    RuntimeError
     └── S3DataError                 any S3 failure (also: throttled or 5xx after every retry,
          │                          checksum mismatch, a malformed s3:// URL)
          ├── BucketMissingError     the bucket does not exist
          ├── ObjectMissingError     the bucket exists, the object (named by its key) does not
          ├── CredentialsRejectedError  no credentials, unknown key, wrong secret, access denied
          └── EndpointUnreachableError  no connection to the endpoint after every retry

Transient errors (throttling, 5xx, dropped connections) are retried by botocore with exponential
backoff and jitter (retry mode "standard", `DEFAULT_MAX_ATTEMPTS` attempts; the usual
AWS_MAX_ATTEMPTS and AWS_RETRY_MODE environment variables override both). Files larger than
`MULTIPART_THRESHOLD` travel in parts of `MULTIPART_CHUNKSIZE`, several at a time.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeAlias

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ml.artefact import md5_of

S3Client: TypeAlias = BaseClient

DATASET_FILES: Final = ("train.csv", "test.csv")
NEW_DATA_PREFIX: Final = "new_ML_data/"
DVC_PREFIX: Final = "DVC_Artefacts"
DEFAULT_BUCKET: Final = "ce7-grp-1-bucket"

DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_RETRY_MODE: Final = "standard"
RETRY_MODES: Final = ("standard", "adaptive", "legacy")
MIB: Final = 1024 * 1024
MULTIPART_THRESHOLD: Final = 8 * MIB
MULTIPART_CHUNKSIZE: Final = 8 * MIB
MAX_CONCURRENCY: Final = 4
# The md5 of the whole file, stored as object metadata by `upload_file` and checked by downloads:
# a multipart object's ETag is not the md5 of its content, so the ETag alone cannot prove it.
MD5_METADATA_KEY: Final = "md5"
# One id per `upload_dataset` call, on every file it writes: a fetch refuses a train.csv and a
# test.csv from different uploads (one upload failed halfway, or only one file was replaced).
UPLOAD_ID_METADATA_KEY: Final = "upload-id"

_BUCKET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
    }
)
_CREDENTIALS_HINT: Final = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may read and "
    "write the bucket"
)


class S3DataError(RuntimeError):
    """An S3 transfer failed; the message says which kind of failure, where, and what to check."""


class BucketMissingError(S3DataError):
    """The bucket does not exist at the endpoint."""


class ObjectMissingError(S3DataError):
    """The bucket exists but the object does not; the message names the key."""


class CredentialsRejectedError(S3DataError):
    """No credentials were found, or the endpoint refused the ones given."""


class EndpointUnreachableError(S3DataError):
    """No connection could be made to the endpoint, even after retrying."""


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix ("" or ending in "/"), parsed from an s3:// URL."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


def parse_s3_url(url: str) -> S3Location:
    """Split ``s3://bucket/prefix/`` into bucket and prefix; the prefix gains a trailing "/"."""
    if not url.startswith("s3://"):
        raise S3DataError(f"{url!r}: not an S3 URL; expected s3://<bucket>/{NEW_DATA_PREFIX}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise S3DataError(
            f"{url!r}: bucket name {bucket!r} is not valid; allowed: 3 to 63 characters of "
            "lowercase letters, digits, dots and hyphens, starting and ending with a letter or "
            "digit"
        )
    prefix = prefix.strip("/")
    return S3Location(bucket=bucket, prefix=f"{prefix}/" if prefix else "")


def new_data_url(bucket: str) -> str:
    """Where training data for `bucket` arrives: s3://<bucket>/new_ML_data/."""
    return parse_s3_url(f"s3://{bucket}/{NEW_DATA_PREFIX}").url


def dvc_remote_url(bucket: str) -> str:
    """The DVC remote for `bucket`: s3://<bucket>/DVC_Artefacts."""
    return f"{parse_s3_url(f's3://{bucket}/').url}{DVC_PREFIX}"


def retry_settings(max_attempts: int | None = None) -> dict[str, Any]:
    """Retry settings: the argument, else AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, else our defaults."""
    mode = os.environ.get("AWS_RETRY_MODE", DEFAULT_RETRY_MODE)
    if mode not in RETRY_MODES:
        raise S3DataError(f"AWS_RETRY_MODE={mode!r}: allowed: {', '.join(RETRY_MODES)}")
    if max_attempts is None:
        raw = os.environ.get("AWS_MAX_ATTEMPTS", str(DEFAULT_MAX_ATTEMPTS))
        try:
            max_attempts = int(raw)
        except ValueError:
            raise S3DataError(f"AWS_MAX_ATTEMPTS={raw!r}: expected a whole number >= 1") from None
    if max_attempts < 1:
        raise S3DataError(f"max attempts {max_attempts}: expected a whole number >= 1")
    # botocore reads "max_attempts" in Config as the number of RETRIES (a legacy quirk);
    # "total_max_attempts" counts every attempt, as AWS_MAX_ATTEMPTS does.
    return {"mode": mode, "total_max_attempts": max_attempts}


def transfer_config() -> TransferConfig:
    """Multipart above `MULTIPART_THRESHOLD`, in `MULTIPART_CHUNKSIZE` parts, a few in parallel."""
    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNKSIZE,
        max_concurrency=MAX_CONCURRENCY,
        use_threads=True,
    )


def _custom_endpoint(endpoint_url: str | None) -> bool:
    return bool(
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )


def make_client(endpoint_url: str | None = None, *, max_attempts: int | None = None) -> S3Client:
    """An S3 client with retries and timeouts; `endpoint_url` names an S3-compatible server."""
    config = Config(
        retries=retry_settings(max_attempts),
        connect_timeout=5,
        read_timeout=60,
        # Path-style addressing: S3-compatible servers on an IP address or localhost have no
        # per-bucket host names. botocore also takes the endpoint from AWS_ENDPOINT_URL(_S3).
        s3={"addressing_style": "path"} if _custom_endpoint(endpoint_url) else None,
    )
    # A session per client: boto3's default session is shared module state and not thread-safe.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def _endpoint(client: S3Client) -> str:
    return str(client.meta.endpoint_url)


def _attempts(client: S3Client, error: BaseException) -> str:
    """How often the request was tried: from the response, else (no response) the retry limit."""
    response = getattr(error, "response", None) or {}
    retries = response.get("ResponseMetadata", {}).get("RetryAttempts")
    if isinstance(retries, int):
        return f" after {retries + 1} attempts" if retries else ""
    limit = (client.meta.config.retries or {}).get("total_max_attempts")
    return f" after {limit} attempts" if isinstance(limit, int) and limit > 1 else ""


def _coded_error(client: S3Client, bucket: str, key: str) -> ClientError | None:
    """Ask again with a GET: answers to HEAD carry no body, so their error has no code."""
    try:
        client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
    except ClientError as error:
        return error
    except BotoCoreError:
        return None
    return None


def _listing(client: S3Client, bucket: str, prefix: str) -> str:
    """What is under `prefix`, for an object-missing message; empty when it cannot be listed."""
    try:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=20)
    except (ClientError, BotoCoreError):
        return ""
    names = [item["Key"].removeprefix(prefix) for item in page.get("Contents", [])]
    if not names:
        return f"; s3://{bucket}/{prefix} is empty"
    return f"; s3://{bucket}/{prefix} holds: {', '.join(names)}"


def _translate(
    client: S3Client, error: BaseException, action: str, bucket: str, key: str
) -> S3DataError:
    """Turn a botocore failure into the S3DataError that says which kind it was."""
    where = f"s3://{bucket}/{key}"
    endpoint = _endpoint(client)
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return EndpointUnreachableError(
            f"endpoint unreachable: could not connect to {endpoint} to {action} {where}"
            f"{_attempts(client, error)} ({error}); check the endpoint URL (data.s3_endpoint_url, "
            "--endpoint-url or AWS_ENDPOINT_URL_S3) and that the server is running"
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return CredentialsRejectedError(
            f"credentials rejected: no usable AWS credentials to {action} {where} ({error}); "
            f"{_CREDENTIALS_HINT}"
        )
    if not isinstance(error, ClientError):
        last = getattr(error, "last_exception", None)  # s3transfer's RetriesExceededError
        detail = f"{error} (last error: {last})" if last else str(error)
        return S3DataError(
            f"S3 transfer failed: could not {action} {where} at {endpoint}: {detail}"
        )
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in {"404", "403", "400", "301"}:
        coded = _coded_error(client, bucket, key)
        if coded is not None:
            error, code = coded, str(coded.response.get("Error", {}).get("Code", code))
    message = error.response.get("Error", {}).get("Message", str(error))
    if code == "NoSuchBucket":
        return BucketMissingError(
            f"bucket missing: s3://{bucket} does not exist at {endpoint} (while trying to {action} "
            f"{where}); check the bucket name (data.source, --bucket, or `pulumi stack output "
            "bucketName --stack nonprod`)"
        )
    if code in {"NoSuchKey", "404"}:
        prefix = key.rpartition("/")[0] + "/" if "/" in key else ""
        return ObjectMissingError(
            f"object missing: key {key!r} not found in bucket {bucket} at {endpoint}"
            f"{_listing(client, bucket, prefix)}; upload train.csv and test.csv with "
            "`python -m ml.cli upload TRAIN.csv TEST.csv --bucket NAME`"
        )
    if code in _CREDENTIAL_CODES:
        # On AWS, a missing object is reported as AccessDenied to whoever may not list the bucket.
        unlisted = " (or the object is missing and they may not list the bucket)"
        return CredentialsRejectedError(
            f"credentials rejected: {endpoint} refused to {action} {where}: {code} ({message})"
            f"{unlisted if code == 'AccessDenied' else ''}; {_CREDENTIALS_HINT}"
        )
    return S3DataError(
        f"S3 request failed: could not {action} {where} at {endpoint}{_attempts(client, error)}: "
        f"{code} ({message})"
    )


@contextmanager
def _s3_errors(client: S3Client, action: str, bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except S3DataError:
        raise
    except (ClientError, BotoCoreError) as error:
        raise _translate(client, error, action, bucket, key) from error
    except Exception as error:
        # s3transfer raises its own RetriesExceededError (a plain Exception) when a download's
        # body keeps breaking off; keep the cause, say what failed.
        if type(error).__module__.startswith("s3transfer"):
            raise _translate(client, error, action, bucket, key) from error
        raise


def download_object(client: S3Client, bucket: str, key: str, handle: BinaryIO) -> dict[str, Any]:
    """Stream one object into an open, seekable file; return its HEAD metadata (size, md5, ETag).

    Large objects come down in ranged parts, in parallel; a body that breaks off is fetched again.
    """
    with _s3_errors(client, "read", bucket, key):
        head = client.head_object(Bucket=bucket, Key=key)
        client.download_fileobj(bucket, key, handle, Config=transfer_config())
    return dict(head)


def _expected_md5(head: Mapping[str, Any]) -> str | None:
    """The content md5 S3 vouches for: our metadata, else a single-part, unencrypted ETag."""
    recorded = head.get("Metadata", {}).get(MD5_METADATA_KEY)
    if recorded:
        return str(recorded)
    etag = str(head.get("ETag", "")).strip('"')
    if re.fullmatch(r"[0-9a-f]{32}", etag) and head.get("ServerSideEncryption") != "aws:kms":
        return etag
    return None


def download_file(client: S3Client, bucket: str, key: str, dest: Path) -> str:
    """Download one object to `dest` atomically (temporary name, then rename); return its md5.

    On any failure nothing is left behind: not `dest`, not the temporary file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = _download_to_temporary(client, bucket, key, dest)
    try:
        os.replace(temporary.path, dest)
    except BaseException:
        temporary.path.unlink(missing_ok=True)
        raise
    return temporary.md5


@dataclass(frozen=True)
class _Downloaded:
    path: Path
    md5: str
    upload_id: str | None


def _download_to_temporary(client: S3Client, bucket: str, key: str, dest: Path) -> _Downloaded:
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            head = download_object(client, bucket, key, handle)
            handle.flush()
            os.fsync(handle.fileno())
        md5 = md5_of(path)
        expected = _expected_md5(head)
        if expected is not None and expected != md5:
            raise S3DataError(
                f"checksum mismatch: s3://{bucket}/{key} arrived with md5 {md5}, S3 recorded "
                f"{expected}; the object changed during the download or was corrupted: try again"
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload_id = head.get("Metadata", {}).get(UPLOAD_ID_METADATA_KEY)
    return _Downloaded(path=path, md5=md5, upload_id=upload_id)


def fetch_dataset(
    url: str,
    dest_dir: Path,
    *,
    endpoint_url: str | None = None,
    max_attempts: int | None = None,
) -> dict[str, str]:
    """Download train.csv and test.csv from the s3:// prefix `url` into `dest_dir`.

    Both files are downloaded under temporary names in `dest_dir` first and renamed into place
    only when both arrived whole (md5 checked against the one recorded at upload), so a failure
    leaves `dest_dir` as it was. Returns {"train.csv": md5, "test.csv": md5}.
    """
    location = parse_s3_url(url)
    client = make_client(endpoint_url, max_attempts=max_attempts)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    arrived: dict[str, _Downloaded] = {}
    try:
        for name in DATASET_FILES:
            arrived[name] = _download_to_temporary(
                client, location.bucket, location.key(name), dest_dir / name
            )
        _require_one_upload(location, arrived)
        for name, download in arrived.items():
            os.replace(download.path, dest_dir / name)
    finally:
        for download in arrived.values():
            download.path.unlink(missing_ok=True)
    return {name: download.md5 for name, download in arrived.items()}


def _require_one_upload(location: S3Location, arrived: Mapping[str, _Downloaded]) -> None:
    """Refuse files written by different `upload` calls (files put there by other means carry no
    upload id and are taken as they are)."""
    ids = {name: d.upload_id for name, d in arrived.items() if d.upload_id is not None}
    if len(set(ids.values())) > 1:
        found = ", ".join(f"{name} from upload {upload_id}" for name, upload_id in ids.items())
        raise S3DataError(
            f"mixed dataset under s3://{location.bucket}/{location.prefix}: {found}; an upload "
            "stopped halfway or replaced one file only: upload both files again"
        )


def upload_file(
    client: S3Client, path: Path, bucket: str, key: str, upload_id: str | None = None
) -> str:
    """Upload one file (multipart when large) with its md5 as metadata; return the md5."""
    md5 = md5_of(path)
    extra: dict[str, Any] = {"Metadata": {MD5_METADATA_KEY: md5}}
    if upload_id is not None:
        extra["Metadata"][UPLOAD_ID_METADATA_KEY] = upload_id
    if path.suffix == ".csv":
        extra["ContentType"] = "text/csv"
    with _s3_errors(client, "write", bucket, key), path.open("rb") as handle:
        client.upload_fileobj(handle, bucket, key, ExtraArgs=extra, Config=transfer_config())
    return md5


def upload_dataset(
    files: Mapping[str, Path],
    url: str,
    *,
    endpoint_url: str | None = None,
    max_attempts: int | None = None,
) -> dict[str, str]:
    """Upload each local file under its name (train.csv, test.csv) to the s3:// prefix `url`.

    Checks that the bucket exists first (a HEAD on the bucket), so a wrong bucket name fails before
    the first byte. Returns {name: md5}.
    Validation against the feature contract is the caller's job (see ml/cloud_cli.py `upload`).
    """
    unknown = sorted(set(files) - set(DATASET_FILES))
    if unknown:
        raise S3DataError(f"cannot upload {unknown}: allowed names are {', '.join(DATASET_FILES)}")
    location = parse_s3_url(url)
    client = make_client(endpoint_url, max_attempts=max_attempts)
    _require_bucket(client, location)
    upload_id = uuid.uuid4().hex
    return {
        name: upload_file(client, Path(path), location.bucket, location.key(name), upload_id)
        for name, path in files.items()
    }


def _require_bucket(client: S3Client, location: S3Location) -> None:
    """Fail with BucketMissingError before any upload starts when the bucket does not exist.

    Only a 404 is conclusive: a 403 may just mean the writer lacks s3:ListBucket, which an upload
    does not need, so the upload goes ahead and its own (coded) error names any real problem.
    """
    with _s3_errors(client, "reach", location.bucket, location.prefix):
        try:
            client.head_bucket(Bucket=location.bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchBucket"}:
                raise BucketMissingError(
                    f"bucket missing: s3://{location.bucket} does not exist at "
                    f"{_endpoint(client)}; check the bucket name (--bucket, data.source, or "
                    "`pulumi stack output bucketName --stack nonprod`)"
                ) from error
            if code not in _CREDENTIAL_CODES:
                raise
