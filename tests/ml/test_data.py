"""The synthetic generator and the data stage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.data import (
    BLANK_RATES,
    SOURCE_FILE,
    DataSourceError,
    fetch_raw_data,
    generate_dataset,
)
from ml.validate import validate_frame
from tests.ml.conftest import small_params


def test_same_seed_gives_the_same_rows_and_probabilities():
    first, p_first = generate_dataset(5_000, seed=3)
    second, p_second = generate_dataset(5_000, seed=3)
    other, _ = generate_dataset(5_000, seed=4)
    pd.testing.assert_frame_equal(first, second)
    np.testing.assert_array_equal(p_first, p_second)
    assert not first.equals(other), "a different seed must give different rows"


@pytest.mark.data
def test_generated_rows_have_the_dirt_and_rates_of_the_real_data():
    # given
    frame, probability = generate_dataset(60_000, seed=11)
    # then: blanks at the documented rates
    for column, rate in BLANK_RATES.items():
        observed = (frame[column] == "").mean()
        assert abs(observed - rate) < 0.01, f"{column}: {observed:.3f} blank, expected {rate}"
    # premiums as currency text, whole numbers written as floats
    assert frame["AnnualPremium"].str.match(r"^£\d{1,3}(,\d{3})*\.\d\d $").all()
    ages = frame.loc[frame["Age"] != "", "Age"]
    assert ages.str.fullmatch(r"\d+\.0").all()
    # about 12% buyers, labels drawn from the kept probabilities
    assert 0.11 < frame["Result"].mean() < 0.135
    assert abs(frame["Result"].mean() - probability.mean()) < 0.01
    # the label depends mainly on Switch and PastAccident, as in the real data
    rates = frame.groupby("Switch")["Result"].mean()
    assert rates["1.0"] < 0.01 < 0.2 < rates["0.0"], rates.to_dict()
    # every generated row passes validation: dirt, not errors
    result = validate_frame(frame.astype(str))
    assert result.quarantine.empty, result.quarantine.head()


def test_data_stage_writes_files_and_records_their_md5(tmp_path):
    # given
    params = small_params(train_rows=500, test_rows=200).data
    raw = tmp_path / "raw"
    # when
    md5 = fetch_raw_data(params, raw)
    # then
    assert sorted(md5) == ["test.csv", "train.csv", "truth.csv"]
    record = json.loads((raw / SOURCE_FILE).read_text())
    assert record["source"] == "synthetic" and record["md5"] == md5, record
    assert record["synthetic"] == params.synthetic.model_dump(), "the params that made the files"
    assert len(pd.read_csv(raw / "train.csv")) == 500


def test_unchanged_synthetic_files_are_kept_and_changed_ones_regenerated(tmp_path, capsys):
    # given the files of a first run
    params = small_params(train_rows=500, test_rows=200).data
    raw = tmp_path / "raw"
    first = fetch_raw_data(params, raw)
    stamp = (raw / "train.csv").stat().st_mtime_ns
    # when the stage runs again with the same params
    again = fetch_raw_data(params, raw)
    # then nothing is regenerated, and it says so
    assert again == first
    assert (raw / "train.csv").stat().st_mtime_ns == stamp, "an unchanged file was rewritten"
    assert "up to date" in capsys.readouterr().err
    # when a file was edited by hand, or the params change, the files are made again
    (raw / "test.csv").write_text("edited")
    assert fetch_raw_data(params, raw) == first, "a damaged file must be regenerated"
    bigger = small_params(train_rows=600, test_rows=200).data
    assert fetch_raw_data(bigger, raw)["train.csv"] != first["train.csv"]


def test_files_written_in_chunks_are_the_rows_generated_at_once(tmp_path, monkeypatch):
    # given chunks much smaller than the files
    monkeypatch.setattr("ml.data.WRITE_CHUNK_ROWS", 77)
    params = small_params(train_rows=500, test_rows=200, seed=5).data
    # when
    fetch_raw_data(params, tmp_path / "raw")
    # then the files hold exactly the frame generated in one piece
    frame, _ = generate_dataset(700, seed=5)
    written = pd.concat(
        [pd.read_csv(tmp_path / "raw" / n, dtype=str, keep_default_na=False)
         for n in ("train.csv", "test.csv")], ignore_index=True,
    )  # fmt: skip
    pd.testing.assert_frame_equal(written, frame.astype(str))


def test_local_folder_source_is_copied(tmp_path):
    # given a folder holding train.csv and test.csv
    source = tmp_path / "incoming"
    fetch_raw_data(small_params(train_rows=300, test_rows=100).data, source)
    params = small_params().data.model_copy(update={"source": str(source)})
    # when
    md5 = fetch_raw_data(params, tmp_path / "raw")
    # then
    assert sorted(md5) == ["test.csv", "train.csv"]
    assert (tmp_path / "raw" / "train.csv").read_bytes() == (source / "train.csv").read_bytes()


def test_a_failing_source_leaves_the_previous_data_untouched(tmp_path):
    # given data from an earlier run
    raw = tmp_path / "raw"
    fetch_raw_data(small_params(train_rows=300, test_rows=100).data, raw)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    # when the next source lacks test.csv
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.csv").write_text("id\n1\n")
    params = small_params().data.model_copy(update={"source": str(broken)})
    with pytest.raises(DataSourceError, match="test.csv not found"):
        fetch_raw_data(params, raw)
    # then nothing changed and no staging folder is left behind
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "raw"]


def test_an_unreachable_s3_source_fails_the_stage_with_the_reason(tmp_path, monkeypatch):
    # given data from an earlier run and an S3 endpoint nothing listens on
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    raw = tmp_path / "raw"
    fetch_raw_data(small_params(train_rows=300, test_rows=100).data, raw)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    params = small_params().data.model_copy(
        update={"source": "s3://bucket/new_ML_data/", "s3_endpoint_url": "http://127.0.0.1:9"}
    )
    # when / then
    with pytest.raises(DataSourceError, match="endpoint unreachable"):
        fetch_raw_data(params, raw)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
