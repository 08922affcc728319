"""Commands for the cloud data path: upload a checked dataset, fetch it, point DVC at S3.

  upload TRAIN TEST      check both files against the feature contract, then send them to
                         s3://<bucket>/new_ML_data/ as train.csv and test.csv
  fetch                  download train.csv and test.csv from s3://<bucket>/new_ML_data/
  use-s3-remote          point the DVC remote `s3` at s3://<bucket>/DVC_Artefacts (config.local)

Where no bucket is named, `upload` and `fetch` use data.source (and data.s3_endpoint_url) from
params.yaml when it is an s3:// URL. Exit codes: 0 done, 1 S3 or DVC failure, 2 bad usage,
3 dataset refused (nothing sent).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import yaml

from ml.s3 import (
    DATASET_FILES,
    S3DataError,
    dvc_remote_url,
    fetch_dataset,
    new_data_url,
    parse_s3_url,
    upload_dataset,
)

S3_REMOTE: Final = "s3"
STACK_BUCKET_OUTPUT: Final = "bucketName"
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3

app = typer.Typer(
    help="Cloud data path: new_ML_data/ uploads and fetches, the DVC_Artefacts remote on S3.",
    no_args_is_help=True,
    add_completion=False,
)


class UploadRefusedError(ValueError):
    """Files would fail training; the message lists every problem found in every file."""


@dataclass(frozen=True)
class FileCheck:
    """What validation found in one file that may be uploaded."""

    name: str
    path: Path
    rows: int
    usable: int
    problems: list[str]

    def describe(self) -> str:
        quarantined = self.rows - self.usable
        lines = [
            f"{self.name} ({self.path}): {self.rows:,} rows, {self.usable:,} usable, "
            f"{quarantined:,} quarantined"
        ]
        lines += [f"  {line}" for line in self.problems]
        return "\n".join(lines)


def check_dataset(files: dict[str, Path]) -> list[FileCheck]:
    """Validate each file against the feature contract; UploadRefusedError if any would fail.

    Every file is checked before the verdict, so one refusal lists all the problems at once.
    """
    from ml.validate import DatasetError, check_trainable, validate_csv  # pandas: only when used

    checks: list[FileCheck] = []
    refusals: list[str] = []
    for name, path in files.items():
        try:
            result = validate_csv(path)
            check_trainable(result, f"{name} ({path})")
        except DatasetError as error:
            refusals.append(str(error))
            continue
        rows = len(result.clean) + len(result.quarantine)
        checks.append(FileCheck(name, path, rows, len(result.clean), result.describe()))
    if refusals:
        listed = "\n".join(f"  - {problem}" for problem in refusals)
        raise UploadRefusedError(
            f"refused: {len(refusals)} of {len(files)} files would fail training; nothing was "
            f"uploaded:\n{listed}"
        )
    return checks


@dataclass(frozen=True)
class Destination:
    url: str
    endpoint_url: str | None


def resolve_destination(
    url: str | None,
    bucket: str | None,
    endpoint_url: str | None,
    params_file: Path,
) -> Destination:
    """The s3:// prefix and endpoint named on the command line, else by params.yaml data.*."""
    if url and bucket:
        raise typer.BadParameter("give --bucket or --url, not both")
    try:
        if url:
            return Destination(parse_s3_url(url).url, endpoint_url)
        if bucket:
            return Destination(new_data_url(bucket), endpoint_url)
    except S3DataError as error:
        raise typer.BadParameter(str(error)) from None
    data = _data_params(params_file)
    source = str(data.get("source", ""))
    if not source.startswith("s3://"):
        raise typer.BadParameter(
            f"no S3 location: give --bucket NAME or --url s3://NAME/new_ML_data/ "
            f"(data.source in {params_file} is {source!r}, not an s3:// URL)"
        )
    try:
        location = parse_s3_url(source)
    except S3DataError as error:
        raise typer.BadParameter(f"data.source in {params_file}: {error}") from None
    return Destination(location.url, endpoint_url or data.get("s3_endpoint_url"))


def _data_params(params_file: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(params_file.read_text())
    except FileNotFoundError:
        raise typer.BadParameter(
            f"{params_file} not found: give --bucket or --url, or run from the repository root"
        ) from None
    except yaml.YAMLError as error:
        raise typer.BadParameter(f"{params_file}: not valid YAML ({error})") from None
    data = raw.get("data") if isinstance(raw, dict) else None
    return data if isinstance(data, dict) else {}


def _fail(command: str, message: str, code: int) -> typer.Exit:
    typer.echo(f"{command}: {message}", err=True)
    return typer.Exit(code)


BucketOption = Annotated[
    str | None,
    typer.Option(
        "--bucket",
        help="Bucket name: the location is s3://BUCKET/new_ML_data/.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Full S3 prefix instead of --bucket, e.g. s3://b/new_ML_data/."),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="S3-compatible endpoint (MinIO, LocalStack, moto), e.g. http://127.0.0.1:9000; "
        "omit for AWS.",
        show_default=False,
    ),
]
ParamsOption = Annotated[
    Path,
    typer.Option("--params", help="params.yaml to read data.source from when no bucket is given."),
]


@app.command("upload")
def upload(
    train: Annotated[Path, typer.Argument(help="Training file; stored as train.csv.")],
    test: Annotated[Path, typer.Argument(help="Test file; stored as test.csv.")],
    bucket: BucketOption = None,
    url: UrlOption = None,
    endpoint_url: EndpointOption = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Check a dataset against the feature contract, then upload it to new_ML_data/.

    Files that would fail training (unreadable, wrong columns, no usable rows, a single class)
    are refused before any byte is sent. Rows that break the contract are reported; the data
    stage quarantines them.
    """
    destination = resolve_destination(url, bucket, endpoint_url, params_file)
    try:
        checks = check_dataset({"train.csv": train, "test.csv": test})
    except UploadRefusedError as error:
        raise _fail("upload", str(error), EXIT_REFUSED) from None
    for check in checks:
        typer.echo(check.describe())
    try:
        md5 = upload_dataset(
            {"train.csv": train, "test.csv": test},
            destination.url,
            endpoint_url=destination.endpoint_url,
        )
    except S3DataError as error:
        raise _fail("upload", str(error), EXIT_FAILED) from None
    for name, digest in md5.items():
        typer.echo(f"uploaded {name} to {destination.url}{name} (md5 {digest})")


@app.command("fetch")
def fetch(
    dest: Annotated[
        Path, typer.Option("--dest", help="Folder that receives train.csv and test.csv.")
    ],
    bucket: BucketOption = None,
    url: UrlOption = None,
    endpoint_url: EndpointOption = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Download train.csv and test.csv from new_ML_data/ and print their md5.

    Both land atomically: a failure leaves the destination folder as it was.
    """
    destination = resolve_destination(url, bucket, endpoint_url, params_file)
    try:
        md5 = fetch_dataset(destination.url, dest, endpoint_url=destination.endpoint_url)
    except S3DataError as error:
        raise _fail("fetch", str(error), EXIT_FAILED) from None
    for name in DATASET_FILES:
        typer.echo(f"{dest / name}: md5 {md5[name]}")


def bucket_from_stack_outputs(text: str, source: str) -> str:
    """The bucket named in `pulumi stack output --json` of the nonprod stack."""
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(
            f"{source}: not JSON ({error}); write it with "
            "`pulumi stack output --json --stack nonprod`"
        ) from None
    if not isinstance(outputs, dict) or not isinstance(outputs.get(STACK_BUCKET_OUTPUT), str):
        found = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise typer.BadParameter(
            f"{source}: no string output {STACK_BUCKET_OUTPUT!r} (found {found}); expected the "
            "outputs of the nonprod stack"
        )
    return str(outputs[STACK_BUCKET_OUTPUT])


def configure_s3_remote(
    repo_root: Path,
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    make_default: bool | None = None,
) -> str:
    """Point the DVC remote `s3` at s3://<bucket>/DVC_Artefacts in .dvc/config.local.

    config.local is not committed, so each clone (or CI job) chooses its own bucket and endpoint.
    endpointurl and region are set when given and removed otherwise, so moving from a local test
    server back to AWS leaves nothing stale. make_default True makes `s3` the default remote of
    this clone, False removes that override (the committed default applies again), None leaves it.
    DVC's own config API writes and validates the file. Returns the remote URL.
    """
    from dvc.config import Config, ConfigError  # dvc is slow to import: only when used

    dvc_dir = repo_root / ".dvc"
    if not dvc_dir.is_dir():
        raise ConfigError(f"{repo_root}: not a DVC repository (no .dvc folder); run it at the root")
    remote_url = dvc_remote_url(bucket)
    config = Config(dvc_dir=str(dvc_dir))
    with config.edit("local") as local:
        section = local["remote"].setdefault(S3_REMOTE, {})
        section["url"] = remote_url
        for option, value in (("endpointurl", endpoint_url), ("region", region)):
            if value:
                section[option] = value
            else:
                section.pop(option, None)
        if make_default is True:
            local["core"]["remote"] = S3_REMOTE
        elif make_default is False and local["core"].get("remote") == S3_REMOTE:
            del local["core"]["remote"]
    return remote_url


@app.command("use-s3-remote")
def use_s3_remote(
    bucket: BucketOption = None,
    stack_outputs: Annotated[
        str | None,
        typer.Option(
            "--stack-outputs",
            help="JSON from `pulumi stack output --json --stack nonprod` (a file, or - for "
            "stdin); its bucketName output names the bucket.",
            show_default=False,
        ),
    ] = None,
    endpoint_url: EndpointOption = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Bucket region (AWS).", show_default=False)
    ] = None,
    default: Annotated[
        bool | None,
        typer.Option(
            "--default/--no-default",
            help="Make `s3` this clone's default remote, or drop that override.",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[Path, typer.Option("--repo", help="Root of the DVC repository.")] = Path("."),
) -> None:
    """Point the DVC remote `s3` at s3://BUCKET/DVC_Artefacts for `dvc push/pull -r s3`.

    Written to .dvc/config.local (never committed) with DVC's config API; credentials are not
    stored: DVC reads them from the usual AWS environment variables or profile.
    """
    from dvc.config import ConfigError

    if bool(bucket) == bool(stack_outputs):
        raise typer.BadParameter(
            "name the bucket once: --bucket NAME, or --stack-outputs FILE "
            "(from `pulumi stack output --json --stack nonprod`)"
        )
    if stack_outputs:
        source = "stdin" if stack_outputs == "-" else stack_outputs
        try:
            text = sys.stdin.read() if stack_outputs == "-" else Path(stack_outputs).read_text()
        except OSError as error:
            raise typer.BadParameter(f"{stack_outputs}: cannot read ({error})") from None
        bucket = bucket_from_stack_outputs(text, source)
    try:
        remote_url = configure_s3_remote(
            repo, str(bucket), endpoint_url=endpoint_url, region=region, make_default=default
        )
    except S3DataError as error:
        raise typer.BadParameter(str(error)) from None
    except ConfigError as error:
        raise _fail(
            "use-s3-remote", f"DVC refused the configuration: {error}", EXIT_FAILED
        ) from None
    where = f" via {endpoint_url}" if endpoint_url else ""
    typer.echo(
        f"DVC remote '{S3_REMOTE}' -> {remote_url}{where} (in .dvc/config.local, not committed); "
        f"now `dvc push -r {S3_REMOTE}` and `dvc pull -r {S3_REMOTE}` use it"
    )
    if default:
        typer.echo(f"'{S3_REMOTE}' is now this clone's default remote")


if __name__ == "__main__":
    app()
