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
    set_params(params_file, {("data", "source"): source, ("data", "s3_endpoint_url"): endpoint_url})


def set_params(params_file: Path, values: dict[tuple[str, str], object]) -> None:
    """Set `section.key` values in params.yaml keeping its comments; checked before replacing."""
    yaml = _round_trip_yaml()
    document = yaml.load(params_file.read_text())
    for (section, key), value in values.items():
        if section not in document:
            document[section] = {}
        document[section][key] = value
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


@app.command("drift")
def drift(
    reference: Annotated[
        str,
        typer.Argument(help="raw CSV the model was trained on: a local path or s3://bucket/key"),
    ],
    current: Annotated[str, typer.Argument(help="the new batch, as a path or s3:// URL")],
    out_dir: Annotated[
        Path, typer.Option(help="where drift.json, drift.html and drift.md go")
    ] = Path("reports/drift"),
    model_dir: Annotated[
        Path | None,
        typer.Option(help="model whose predictions are compared too (default: models/ if there)"),
    ] = None,
    max_psi: Annotated[
        float | None, typer.Option(help="PSI above which a column drifts (default: params.yaml)")
    ] = None,
    max_missing_rate_change: Annotated[
        float | None,
        typer.Option(
            help="move of a column's unknown share that counts as drift (default: params)"
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for s3:// files; omit for AWS")
    ] = None,
    params_file: Annotated[Path, typer.Option(help="params.yaml with the drift section")] = (
        PARAMS_FILE
    ),
) -> None:
    """Compare a new batch with the training data: PSI, KS or chi-squared and unknown shares per
    feature, and the predicted probabilities. Exit status 1 when a threshold is crossed."""
    from ml.drift import EXIT_BAD_INPUT, EXIT_DRIFT, DriftError, run, summary_markdown
    from ml.params import DriftParams

    try:
        params = load_params(params_file).drift if params_file.is_file() else DriftParams()
        overrides = {"max_psi": max_psi, "max_missing_rate_change": max_missing_rate_change}
        overrides["s3_endpoint_url"] = endpoint_url
        params = DriftParams.model_validate(
            {**params.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except (ParamsError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error
    if model_dir is None and (Path("models") / "model.json").is_file():
        model_dir = Path("models")
    try:
        report = run(reference, current, params, out_dir, model_dir)
    except DriftError as error:
        typer.echo(f"drift: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(summary_markdown(report))
    typer.echo(f"reports: {out_dir}/drift.json, drift.html, drift.md")
    if report["drifted"]:
        raise typer.Exit(EXIT_DRIFT)


@app.command("drift-reference")
def drift_reference(
    reference: Annotated[
        str | None,
        typer.Argument(
            help="raw CSV (path or s3://bucket/key) to compare batches with; omit: none"
        ),
    ] = None,
    params_file: Annotated[Path, typer.Option(help="the params file to change")] = PARAMS_FILE,
) -> None:
    """Set what the drift stage compares the incoming batch with (params.yaml drift.reference)."""
    if (
        reference is not None
        and not reference.startswith("s3://")
        and not Path(reference).is_file()
    ):
        raise typer.BadParameter(f"{reference!r} is neither a file nor an s3:// URL")
    try:
        set_params(params_file, {("drift", "reference"): reference})
    except ParamsError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(f"drift.reference = {reference}")
    typer.echo("run `dvc repro drift` to compare the incoming batch with it")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
