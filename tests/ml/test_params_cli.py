"""params.yaml is checked strictly; the CLI changes the data source without hand edits."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from ml.cli import app
from ml.params import ParamsError, load_params
from tests.conftest import REPO_ROOT


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", path)
    return path


def test_the_repository_params_are_valid():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.data.source == "synthetic", "the default must work offline"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("learning_rate: 0.03", "learnin_rate: 0.03"), "train.hgb.learnin_rate: Extra inputs"),
        (("min_roc_auc: 0.80", "min_roc_auc: 1.5"), "evaluate.min_roc_auc: Input should be less"),
        (("- [RegionID, Gender,", "- [Region, Gender,"), "unknown feature 'Region'"),
        (("- [AnnualPremium,", "- [Age, AnnualPremium,"), "'Age' is in more than one group"),
        (("source: synthetic", "source: ftp://host/x/"), "expected 'synthetic', a local folder"),
    ],
)
def test_a_typo_or_bad_value_is_an_error_naming_the_key(params_file, edit, message):
    old, new = edit
    text = params_file.read_text()
    assert old in text
    params_file.write_text(text.replace(old, new))
    with pytest.raises(ParamsError, match=message):
        load_params(params_file)


def test_data_source_command_sets_s3_and_keeps_comments(params_file):
    # when
    arguments = ["data-source", "s3://my-bucket/new_ML_data", "--endpoint-url"]
    arguments += ["http://127.0.0.1:9", "--params-file", str(params_file)]
    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    # then
    assert result.exit_code == 0, result.output
    params = load_params(params_file)
    assert params.data.source == "s3://my-bucket/new_ML_data/"
    assert params.data.s3_endpoint_url == "http://127.0.0.1:9"
    assert "# Where train.csv and test.csv come from" in params_file.read_text()


def test_data_source_command_refuses_an_unknown_source(params_file):
    before = params_file.read_text()
    arguments = ["data-source", "/no/such/folder", "--params-file", str(params_file)]
    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 2
    assert "is not 'synthetic', an s3:// URL or a folder" in result.output
    assert params_file.read_text() == before
