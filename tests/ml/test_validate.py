"""Validation: unusable files fail with a named problem; bad rows are quarantined with reasons."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ml.contract import RAW_COLUMNS
from ml.validate import DatasetError, check_trainable, read_raw_csv, run, validate_csv

HEADER = ",".join(RAW_COLUMNS)
GOOD = '1,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,"£1,623.85 ",26,217,1'
GOOD_2 = "2,Female,,1.0,,,1-2 Year,,£131.50 ,152,10,0"


def write(tmp_path, text: str, name: str = "train.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("\n\n", "file is empty"),
        (HEADER + "\n", "has a header but no data rows"),
        (HEADER.replace(",", ";") + "\n" + GOOD.replace(",", ";"), "wrong delimiter.*found ';'"),
        (HEADER.replace(",", "\t") + "\n", "wrong delimiter.*found '\\\\t'"),
        (HEADER.replace(",Result", "") + "\n" + GOOD[:-2], "no label column 'Result'"),
        (
            ",".join(c for c in RAW_COLUMNS if c != "Age") + "\n1,Male,1,28,0,x,Yes,1,26,217,1",
            "missing columns \\['Age'\\]",
        ),
    ],
)
def test_unusable_files_fail_with_the_problem_named(tmp_path, content: str, message: str):
    path = write(tmp_path, content)
    with pytest.raises(DatasetError, match=message):
        read_raw_csv(path)


def test_a_file_that_is_not_utf8_is_named_with_the_offending_byte(tmp_path):
    path = write(tmp_path, HEADER + "\n" + GOOD + "\n", encoding="latin-1")
    with pytest.raises(DatasetError, match=r"not UTF-8 text \(byte 0xa3 at offset \d+\)"):
        read_raw_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        read_raw_csv(tmp_path / "nope.csv")


def test_bad_rows_are_quarantined_with_their_reasons_never_dropped(tmp_path):
    # given one good row, one with blanks, and rows that break the contract
    rows = [
        GOOD,
        GOOD_2,
        "3,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£10.00 ,26,217,0",
        "4,Male,150.0,1.0,28.0,0.0,> 2 Years,Yes,£10.00 ,26,217,0",
        "5,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,£10.00 ,26,217,",
        "5,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,£10.00 ,26,217,1",
        "6,Male,44.5,1.0,28.0,0.0,> 2 Years,Maybe,£10.00 ,26,217,2",
    ]
    path = write(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    # when
    result = validate_csv(path)
    # then every row is either usable or quarantined
    assert len(result.clean) + len(result.quarantine) == len(rows)
    assert result.clean["id"].tolist() == ["1", "2"]
    reasons = dict(zip(result.quarantine["id"], result.quarantine["reason"], strict=True))
    assert reasons["3"].startswith("Gender: unknown category; expected one of 'Female', 'Male'")
    assert reasons["4"].startswith("Age: out of range")
    assert reasons["5"] in ("Result: blank", "id: duplicate of an earlier row")
    assert "Age: not a whole number" in reasons["6"]
    assert "PastAccident: unknown category" in reasons["6"]
    assert "Result: not 0 or 1" in reasons["6"]
    # and the report counts problems by column and reason
    lines = result.describe()
    assert "Age: 1 blank (unknown), 1 out of range, 1 not a whole number" in lines, lines
    assert "id: 1 duplicate of an earlier row" in lines, lines


def test_rows_with_blank_features_are_usable(shared_data):
    # given the production sample: blanks in seven columns, no invalid value
    result = validate_csv(shared_data / "production_sample.csv")
    # then every row is usable and blanks are only counted
    assert result.quarantine.empty
    assert len(result.clean) == 99
    assert result.summary["Switch"] == {"blank (unknown)": 48}


def test_check_trainable_refuses_a_single_class(tmp_path):
    path = write(tmp_path, "\n".join([HEADER, GOOD.replace(",1", ",1")[:-1] + "0", GOOD_2]) + "\n")
    result = validate_csv(path)
    with pytest.raises(DatasetError, match="every usable row has Result=0; both 0 and 1"):
        check_trainable(result, "train.csv")


def test_check_trainable_refuses_no_usable_rows(tmp_path):
    path = write(tmp_path, HEADER + "\n1,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£1.00 ,26,217,1\n")
    with pytest.raises(DatasetError, match="no usable rows \\(Gender: 1 unknown category\\)"):
        check_trainable(validate_csv(path), "train.csv")


def test_stage_writes_clean_quarantine_and_report(tmp_path):
    # given
    raw = tmp_path / "raw"
    raw.mkdir()
    bad = "999,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£1.00 ,26,217,1"
    rows = [f"{i}{GOOD[1:]}" for i in range(100, 120)] + [
        f"{i}{GOOD_2[1:]}" for i in range(200, 220)
    ]
    for name in ("train.csv", "test.csv"):
        write(raw, "\n".join([HEADER, *rows, bad]) + "\n", name)
    # when
    report = run(raw, tmp_path / "validated", tmp_path / "reports" / "validation.json")
    # then
    quarantine = pd.read_csv(tmp_path / "validated" / "quarantine_train.csv", dtype=str)
    assert quarantine["id"].tolist() == ["999"]
    assert report["train"]["usable"] == 40 and report["train"]["quarantined"] == 1
    on_disk = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert on_disk == report


def test_too_few_rows_of_a_class_are_refused_before_training(tmp_path):
    rows = [f"{i}{GOOD_2[1:]}" for i in range(100, 150)] + [GOOD]
    result = validate_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    with pytest.raises(DatasetError, match="only 1 usable rows have Result=1; at least 20"):
        check_trainable(result, "train.csv")


def test_a_column_repeated_in_the_header_is_named(tmp_path):
    header = HEADER.replace("Age,", " Age,Age,", 1)
    path = write(tmp_path, header + "\n" + GOOD.replace(",44.0,", ",44.0,44.0,") + "\n")
    with pytest.raises(DatasetError, match=r"columns repeated in the header: \['Age'\]"):
        read_raw_csv(path)


def test_ids_that_are_the_same_number_are_duplicates(tmp_path):
    rows = [f"{i}{GOOD[1:]}" for i in ("1", "1.0", "01", "1e3", "1000")]
    result = validate_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    assert result.clean["id"].tolist() == ["1", "1e3"]
    assert set(result.quarantine["reason"]) == {"id: duplicate of an earlier row"}


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    result = validate_csv(write(tmp_path, "\n\n" + HEADER + "\n" + GOOD + "\n"))
    assert result.clean["id"].tolist() == ["1"]
