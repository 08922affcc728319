"""The project's command line: `python -m ml.cli --help`.

The pipeline stages themselves run through DVC (`dvc repro`); these commands change the
configuration they read, move datasets to and from the cloud, score files with the trained model
and compare a new batch of data with the training data.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Annotated

import typer
from ruamel.yaml import YAML

from ml.cloud_cli import app as cloud_app
from ml.params import PARAMS_FILE, ParamsError, load_params
from ml.progress import say

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


# upload, fetch and use-s3-remote: moving datasets to and from s3://<bucket>/new_ML_data/.
app.add_typer(cloud_app)


@app.callback()
def _commands() -> None:
    """Commands of the predict-buy project."""


def _round_trip_yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def set_data_source(source: str, endpoint_url: str | None, params_file: Path) -> None:
    """Point the data stage at a source, keeping params.yaml's comments; reject bad values.

    The new file is checked against the params schema before it replaces the old one.
    """
    yaml = _round_trip_yaml()
    document = yaml.load(params_file.read_text())
    document["data"]["source"] = source
    document["data"]["s3_endpoint_url"] = endpoint_url
    buffer = StringIO()
    yaml.dump(document, buffer)
    staged = params_file.with_name(f".{params_file.name}.new")
    staged.write_text(buffer.getvalue())
    try:
        load_params(staged)
        staged.replace(params_file)
    finally:
        staged.unlink(missing_ok=True)


@app.command("data-source")
def data_source(
    source: Annotated[
        str, typer.Argument(help="'synthetic', a local folder, or s3://<bucket>/new_ML_data/")
    ],
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="S3-compatible endpoint (moto, MinIO, LocalStack); omit for AWS"),
    ] = None,
    params_file: Annotated[Path, typer.Option(help="the params file to change")] = PARAMS_FILE,
) -> None:
    """Choose where the data stage reads train.csv and test.csv from (params.yaml data.source)."""
    if source != "synthetic" and not source.startswith("s3://") and not Path(source).is_dir():
        raise typer.BadParameter(f"{source!r} is not 'synthetic', an s3:// URL or a folder")
    if source.startswith("s3://") and not source.endswith("/"):
        source += "/"
    try:
        set_data_source(source, endpoint_url, params_file)
    except ParamsError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(f"data.source = {source}" + (f" (endpoint {endpoint_url})" if endpoint_url else ""))
    typer.echo("run `dvc repro` to fetch, validate, train and evaluate")


@app.command("score")
def score(
    source: Annotated[
        str, typer.Argument(help="raw CSV to score: a local path or s3://bucket/key")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="where to write the scores (.csv or .parquet)")
    ],
    model_dir: Annotated[Path, typer.Option(help="the model to score with")] = Path("models"),
    rejects: Annotated[
        Path | None,
        typer.Option(help="where rows that break the contract go (default: OUTPUT.rejects.csv)"),
    ] = None,
    explain: Annotated[
        bool, typer.Option(help="add base_value and each feature group's exact contribution")
    ] = False,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for an s3:// input; omit for AWS")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
) -> None:
    """Score a raw CSV with the served model: id, predicted_class, probability, threshold and
    model_version per row; rejected rows with their reason in a separate file."""
    from ml.score import ScoreError, load_model, report, score_file

    progress = None if quiet else (lambda line: say("score", line))
    try:
        model = load_model(model_dir)
        summary = score_file(
            source,
            output,
            model,
            rejects=rejects,
            explain=explain,
            endpoint_url=endpoint_url,
            progress=progress,
        )
    except ScoreError as error:
        typer.echo(f"score: {error}", err=True)
        raise typer.Exit(2) from None
    report(summary)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
