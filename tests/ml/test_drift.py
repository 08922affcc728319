"""`predict-buy drift` and the drift stage: PSI, the tests per kind, missing shares, exit status."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from ml.cli import app
from ml.data import generate_dataset
from ml.drift import EXIT_BAD_INPUT, EXIT_DRIFT, compare_column, main, psi, read_sample, run
from ml.params import DriftParams
from tests.conftest import REPO_ROOT
from tests.service.model_factory import write_model_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A reference, a batch like it (another seed), and a batch that moved."""
    folder = tmp_path_factory.mktemp("drift")
    reference, _ = generate_dataset(6_000, seed=1)
    same, _ = generate_dataset(6_000, seed=2)
    moved = same.copy()
    age = pd.to_numeric(moved["Age"], errors="coerce")
    moved["Age"] = (age + 15).clip(upper=100).map(lambda v: "" if math.isnan(v) else f"{v:.1f}")
    rng = np.random.default_rng(0)
    moved.loc[rng.random(len(moved)) < 0.5, "PastAccident"] = ""  # 40% blank -> about 70%
    moved.loc[3, "Gender"] = "unknown-label"  # refused by the contract, not compared
    paths = {"reference": folder / "train.csv", "same": folder / "same.csv"}
    paths["moved"] = folder / "moved.csv"
    reference.to_csv(paths["reference"], index=False)
    same.to_csv(paths["same"], index=False)
    moved.to_csv(paths["moved"], index=False)
    return paths


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


def test_psi_matches_its_definition() -> None:
    # given shares 50/50 against 90/10
    value = psi(np.array([50.0, 50.0]), np.array([90.0, 10.0]))
    # then PSI = sum((c - r) * ln(c / r))
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert value == pytest.approx(expected, rel=1e-12)
    assert psi(np.array([3.0, 7.0]), np.array([30.0, 70.0])) == pytest.approx(0.0, abs=1e-15)


def test_each_kind_gets_its_test() -> None:
    # given a numeric and a categorical column with unknowns
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 2_000), rng.normal(0.3, 1, 2_000)
    a[:100] = np.nan
    numeric = compare_column("x", a, b, False, DriftParams())
    # then a numeric column gets KS on its known values, a categorical one chi-squared on counts
    expected = stats.ks_2samp(a[~np.isnan(a)], b)
    assert numeric["test"] == "kolmogorov-smirnov"
    assert numeric["p_value"] == pytest.approx(expected.pvalue)
    assert numeric["missing_reference"] == pytest.approx(0.05)
    codes_r, codes_c = np.repeat([0.0, 1.0], [700, 300]), np.repeat([0.0, 1.0], [500, 500])
    categorical = compare_column("c", codes_r, codes_c, True, DriftParams())
    table = np.array([[700, 300], [500, 500]])
    assert categorical["test"] == "chi-squared"
    assert categorical["p_value"] == pytest.approx(stats.chi2_contingency(table).pvalue)
    assert categorical["psi"] == pytest.approx(psi(table[0], table[1]))


def test_a_batch_like_the_reference_does_not_drift(
    files: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    # when a batch drawn like the training data is compared with it
    report = run(str(files["reference"]), str(files["same"]), DriftParams(), tmp_path, model_dir)
    # then nothing crosses a threshold, and every feature and the prediction are reported
    assert not report["drifted"], report["drifted_columns"]
    assert len(report["features"]) == 10
    # (PSI below 0.1 is, by the usual convention, no shift at all)
    assert report["prediction"]["psi"] < 0.1
    assert all(f["psi"] < 0.1 for f in report["features"]), [
        (f["name"], f["psi"]) for f in report["features"]
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.html", "drift.json", "drift.md"]


def test_a_moved_batch_drifts_where_it_moved(
    files: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    # when the batch whose ages rose and whose PastAccident went blank more often is compared
    report = run(str(files["reference"]), str(files["moved"]), DriftParams(), tmp_path, model_dir)
    by_name = {f["name"]: f for f in report["features"]}
    # then exactly those columns drift, each for its reason, and the refused row is counted
    assert report["drifted"]
    assert {"Age", "PastAccident"} <= set(report["drifted_columns"])
    assert by_name["Age"]["psi"] > 0.2 and by_name["Age"]["p_value"] < 1e-6
    assert any("unknown share" in r for r in by_name["PastAccident"]["reasons"])
    assert not by_name["DaysSinceCreated"]["drifted"]
    assert report["current"]["rejected"] == 1
    # and the readable reports say so
    assert "**Drift over the thresholds** in" in (tmp_path / "drift.md").read_text()
    page = (tmp_path / "drift.html").read_text()
    assert page.count("data:image/png;base64,") == 11, "one figure per feature + prediction"
    assert json.loads((tmp_path / "drift.json").read_text())["drifted"] is True


def test_the_command_exits_non_zero_on_drift(
    files: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["drift", str(files["reference"]), "--model-dir", str(model_dir), "--params-file",
            str(REPO_ROOT / "params.yaml")]  # fmt: skip
    same = runner.invoke(app, [*base, str(files["same"]), "--out-dir", str(tmp_path / "a")])
    moved = runner.invoke(app, [*base, str(files["moved"]), "--out-dir", str(tmp_path / "b")])
    assert same.exit_code == 0, same.output
    assert moved.exit_code == EXIT_DRIFT, moved.output
    assert "| Age |" in moved.output
    # a threshold given on the command line replaces the configured one
    lenient = runner.invoke(
        app,
        [*base, str(files["moved"]), "--out-dir", str(tmp_path / "c"), "--max-psi", "5",
         "--max-missing-rate-change", "0.9"],
    )  # fmt: skip
    assert lenient.exit_code == 0, lenient.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"id,Gender\n", "missing columns"),
        (b"", "file is empty"),
    ],
)
def test_unusable_files_exit_with_a_clear_error(
    files: dict[str, Path], tmp_path: Path, content: bytes | None, message: str
) -> None:
    current = tmp_path / "batch.csv"
    if content is not None:
        current.write_bytes(content)
    result = CliRunner().invoke(
        app, ["drift", str(files["reference"]), str(current), "--out-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert message in result.output
    assert not (tmp_path / "r").exists(), "no report from unusable input"


def test_a_file_of_only_refused_rows_is_an_error(files: dict[str, Path], tmp_path: Path) -> None:
    frame = pd.read_csv(files["same"], dtype=str, keep_default_na=False).head(5)
    frame["Age"] = "200"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="no usable rows to compare \\(5 refused\\)"):
        read_sample(str(path))


def _stage_project(root: Path, reference: str | None, fail: bool, batch: Path) -> None:
    params = (REPO_ROOT / "params.yaml").read_text()
    params = params.replace("  reference: null", f"  reference: {reference or 'null'}")
    params = params.replace("fail_on_drift: false", f"fail_on_drift: {str(fail).lower()}")
    (root / "params.yaml").write_text(params)
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "train.csv").write_bytes(batch.read_bytes())


def test_the_stage_skips_without_a_reference(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stage_project(tmp_path, None, True, files["moved"])
    monkeypatch.chdir(tmp_path)
    main()
    report = json.loads((tmp_path / "reports/drift/drift.json").read_text())
    assert report["skipped"].startswith("no reference configured")
    assert "skipped" in (tmp_path / "reports/drift/drift.md").read_text()


def test_the_stage_stops_the_pipeline_when_told_to(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given fail_on_drift and a batch that moved
    _stage_project(tmp_path, str(files["reference"]), True, files["moved"])
    monkeypatch.chdir(tmp_path)
    # when the stage runs, then it fails naming the columns, after writing its reports
    with pytest.raises(SystemExit, match="over the thresholds in .*Age"):
        main()
    assert json.loads((tmp_path / "reports/drift/drift.json").read_text())["drifted"]


def test_the_reference_is_set_from_the_command_line(files: dict[str, Path], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text())
    result = CliRunner().invoke(
        app, ["drift-reference", str(files["reference"]), "--params-file", str(params)]
    )
    assert result.exit_code == 0, result.output
    assert f"reference: {files['reference']}" in params.read_text()
    assert "# The raw CSV" in params.read_text(), "comments kept"
    refused = CliRunner().invoke(
        app, ["drift-reference", "http://example.invalid/x.csv", "--params-file", str(params)]
    )
    assert refused.exit_code != 0


def test_the_train_workflow_runs_drift_before_training_and_comments_it() -> None:
    # given the train workflow's steps in order
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/train.yml").read_text())
    steps = workflow["jobs"]["train"]["steps"]
    names = [step.get("name", "") for step in steps]
    drift = names.index("Drift of new_ML_data/ against the champion's training rows")
    repro = names.index("dvc repro (the evaluate stage fails on the quality gate)")
    opened = names.index("Open the pull request with dvc.lock and the metrics (main only)")
    comment = names.index("Comment the drift summary on the pull request (main only)")
    # then drift runs after the champion is pulled and before training, and its summary is
    # commented on the pull request once it is open
    assert names.index("Pull earlier outputs from the S3 remote") < drift < repro
    assert "dvc repro drift" in steps[drift]["run"]
    assert opened < comment
    assert steps[comment]["if"] == steps[opened]["if"], "a comment only where a pull request opens"
    assert "gh pr comment" in steps[comment]["run"]
    assert "reports/drift/drift.md" in steps[comment]["run"]
