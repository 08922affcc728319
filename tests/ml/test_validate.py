"""Validation: unusable files fail with a named problem; bad rows are quarantined with reasons."""

from __future__ import annotations

import csv
import gzip
import json

import pandas as pd
import pytest

from ml.contract import RAW_COLUMNS
from ml.params import ValidateParams
from ml.validate import DatasetError, check_trainable, read_raw_csv, run, validate_csv, write_csv

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
        "3,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,0",
        "4,Male,150.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,0",
        "5,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,",
        "5,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,1",
        "6,Male,44.5,1.0,28.0,0.0,> 2 Years,Maybe,£500.00 ,26,217,2",
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


@pytest.mark.parametrize("chunk_rows", [1, 2, 200_000])
def test_files_written_in_slices_are_the_bytes_of_one_to_csv(tmp_path, monkeypatch, chunk_rows):
    # given usable rows (categories) and quarantined ones, values needing quotes among them,
    # and a frame of every kind of cell the writer meets: quotes, commas, line ends, spaces,
    # blanks, missing values, categories of text, whole numbers and floats
    rows = [GOOD, GOOD_2, '3,Robot,44.0,1.0,28.0,0.0,> 2 Years,"Yes, ""maybe""",£5 ,26,217,0']
    result = validate_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    odd = pd.DataFrame(
        {
            "text": ["x", 'q"u', "c,d", "l\nm", "r\rs", None, "", " sp "],
            "words": pd.Categorical(["1.0", "2.5", None, "1.0", 'k"', "e,f", "", "z"]),
            "whole": pd.Categorical([1, 2, 3, 1, 2, 3, None, 1]),
            "float": pd.Categorical([1.0, 2.5, 1e16, None, 0.1, 1e-05, 3.0, 2.0]),
            "objects": pd.Series(["a", 'b"', None, "d", "e", "f", "g", "h"], dtype=object),
            "mixed": pd.Series(["a", 1, 2.5, None, "e", "f,g", "h", "i"], dtype=object),
        }
    )
    monkeypatch.setattr("ml.validate.WRITE_CHUNK_ROWS", chunk_rows)
    for frame in (result.clean, result.quarantine, result.quarantine.iloc[:0], odd, odd[2:5]):
        # when
        write_csv(frame, tmp_path / "out.csv")
        # then
        expected = frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode()
        assert (tmp_path / "out.csv").read_bytes() == expected, f"{len(frame)} rows differ"


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
    path = write(tmp_path, HEADER + "\n1,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,1\n")
    with pytest.raises(DatasetError, match="no usable rows \\(Gender: 1 unknown category\\)"):
        check_trainable(validate_csv(path), "train.csv")


def _rows(first_id: int, days: int, bad: str | None = None) -> list[str]:
    """40 usable rows (20 of each class) with ids from first_id, and optionally one bad row."""
    good = [
        f"{first_id + i},Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,£1623.85 ,26,{days + i},1"
        for i in range(20)
    ]
    other = [
        f"{first_id + 20 + i},Female,,1.0,,,1-2 Year,,£131.50 ,152,{days + i},0" for i in range(20)
    ]
    return good + other + ([bad] if bad else [])


def write_pair(raw, train_rows: list[str], test_rows: list[str]) -> None:
    raw.mkdir(exist_ok=True)
    write(raw, "\n".join([HEADER, *train_rows]) + "\n", "train.csv")
    write(raw, "\n".join([HEADER, *test_rows]) + "\n", "test.csv")


def test_stage_writes_clean_quarantine_and_report(tmp_path):
    # given a training and a test file with one bad row each
    raw = tmp_path / "raw"
    bad = "999,Robot,44.0,1.0,28.0,0.0,> 2 Years,Yes,£500.00 ,26,217,1"
    write_pair(raw, _rows(100, 10, bad), _rows(500, 100, bad.replace("999", "998")))
    # when
    report = run(raw, tmp_path / "validated", tmp_path / "reports" / "validation.json")
    # then
    quarantine = pd.read_csv(tmp_path / "validated" / "quarantine_train.csv", dtype=str)
    assert quarantine["id"].tolist() == ["999"]
    assert report["train"]["usable"] == 40 and report["train"]["quarantined"] == 1
    on_disk = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert on_disk == report
    # and the counts by column stay out of the metrics file, in their own file
    assert "by_column" not in json.dumps(on_disk) and "Gender" not in json.dumps(on_disk)
    details = json.loads((tmp_path / "reports" / "validation_details.json").read_text())
    assert details["train"]["Gender"] == {"unknown category": 1}, details
    assert report["test_overlap"] == {"shared_ids": 0, "identical_rows": 0}


@pytest.mark.parametrize(
    ("test_rows", "message"),
    [
        (lambda: _rows(100, 100), r"40 of its 40 ids are in the training file"),
        (lambda: _rows(500, 10), r"40 of its 40 rows \(100.0%\) are identical to training rows"),
    ],
    ids=["same ids", "identical rows"],
)
def test_a_test_file_overlapping_the_training_file_is_refused_with_the_count(
    tmp_path, test_rows, message
):
    # given a test file made of training rows (the same ids, or the same rows under new ids)
    raw = tmp_path / "raw"
    write_pair(raw, _rows(100, 10), test_rows())
    # when / then the stage refuses it, counting the overlap, and writes nothing
    with pytest.raises(DatasetError, match=message):
        run(raw, tmp_path / "validated", tmp_path / "reports" / "validation.json")
    assert not (tmp_path / "validated").exists(), "nothing may be written for a refused pair"
    assert not (tmp_path / "reports").exists()


def test_validation_is_all_or_nothing_a_bad_test_file_leaves_the_previous_outputs(tmp_path):
    # given outputs of an earlier good run
    raw, validated, report = tmp_path / "raw", tmp_path / "validated", tmp_path / "r" / "v.json"
    write_pair(raw, _rows(100, 10), _rows(500, 100))
    run(raw, validated, report)
    before = {p.name: p.read_bytes() for p in validated.iterdir()}
    # when a new training file is good but the test file is unusable
    write_pair(raw, _rows(100, 50), [])
    with pytest.raises(DatasetError, match="test.csv: has a header but no data rows"):
        run(raw, validated, report)
    # then neither file was replaced
    after = {p.name: p.read_bytes() for p in validated.iterdir()}
    assert after == before, "a failed run must leave the previous validated files as they were"


def test_a_file_with_too_many_quarantined_rows_is_refused_with_counts_per_reason(tmp_path):
    # given a training file where 9 rows in 10 are bad
    raw = tmp_path / "raw"
    good = _rows(100, 10)
    bad = [f"{1000 + i},Male,150.0,1.0,28.0,0.0,> 2 Years,Yes,£1.56 ,26,217,1" for i in range(360)]
    write_pair(raw, good + bad, _rows(500, 100))
    # when / then
    with pytest.raises(DatasetError) as caught:
        run(raw, tmp_path / "validated", tmp_path / "reports" / "v.json", ValidateParams())
    message = str(caught.value)
    assert "360 of 400 rows (90.0%) quarantined, more than validate.max_quarantined_share" in (
        message
    ), message
    assert "Age: out of range: 360" in message and "AnnualPremium: implausible" in message
    assert not (tmp_path / "validated").exists()


def test_an_implausible_premium_is_quarantined_not_misread(tmp_path):
    # given "1.562", a premium of 1,562 with a misplaced separator, beside a plausible one
    rows = [GOOD, "2,Male,44.0,1.0,28.0,0.0,> 2 Years,Yes,1.562,26,217,0"]
    result = validate_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    assert result.clean["id"].tolist() == ["1"]
    assert result.quarantine["reason"].iloc[0].startswith("AnnualPremium: implausible: below 100")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            (HEADER + "\n" + GOOD + ",\n" + GOOD.replace("1,", "2,", 1) + ",\n").encode(),
            r"every row ends with a trailing comma \(13 fields, the header has 12\)",
        ),
        (
            (HEADER + ",\n" + GOOD + ",\n").encode(),
            r"every line ends with a comma",
        ),
        ((HEADER + "\n" + GOOD + "\n").encode()[:80] + b"\0\0\0", r"NUL byte at offset 80"),
        (
            (HEADER.lower() + "\n" + GOOD + "\n").encode(),
            r"header names in the wrong case \('gender' should be 'Gender'",
        ),
        (
            gzip.compress((HEADER + "\n" + GOOD + "\n").encode()),
            r"the file is gzip-compressed, not CSV text; decompress it first",
        ),
        (
            (
                HEADER.replace("Age,", "Age,Age,", 1)
                + "\n"
                + GOOD.replace(",44.0,", ",44.0,1,")
                + "\n"
            ).encode(),
            r"columns repeated in the header: \['Age'\]",
        ),
    ],
    ids=[
        "trailing comma",
        "trailing comma in the header too",
        "NUL",
        "lowercase",
        "gzip",
        "Age,Age",
    ],
)
def test_unreadable_files_name_the_real_cause(tmp_path, content: bytes, message: str):
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        read_raw_csv(path)


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


@pytest.mark.parametrize(
    "texts",
    [
        ["1", "01", "+7", "-3", "00012", "9007199254740993", "9007199254740992"],
        ["1", "1.0", "1.", ".5", "1e3", "1E+3", "1.5e-3", "inf", "Infinity", "nan"],
        ["1", "", "1,000", "1_000", "0x10", "1d3", "١٢", "1 2", "1e", "+-1"],
    ],
    ids=["whole numbers, two beyond float precision", "decimals", "not numbers"],
)
def test_ids_are_read_as_the_numbers_pandas_reads(texts):
    from ml.validate import _numbers

    column = pd.Series(texts, dtype="str")
    expected = pd.to_numeric(column, errors="coerce")
    read = _numbers(column)
    assert read.isna().tolist() == expected.isna().tolist()
    assert read.dropna().tolist() == expected.dropna().tolist()


def test_validated_rows_with_line_ends_inside_values_read_back_as_written(tmp_path):
    # given usable rows whose amounts hold a line end (the contract strips it: still £1,623.85),
    # enough of them that the file is read in several blocks
    amount = '"£1,623.85 "'
    rows = [
        f"{i + 1}{GOOD[1:]}".replace(amount, f'"£1,{i % 1000:03d}.85\n"') for i in range(60_000)
    ]
    result = validate_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    assert len(result.clean) == 60_000
    write_csv(result.clean, tmp_path / "validated.csv")
    # when training reads the validated file
    from ml.features import read_validated

    frame, _, labels = read_validated(tmp_path / "validated.csv")
    # then every row comes back whole, its amount with the line end inside
    assert len(frame) == 60_000 and labels.tolist() == [1] * 60_000
    assert frame["AnnualPremium"].astype(str).tolist() == [
        f"£1,{i % 1000:03d}.85\n" for i in range(60_000)
    ]
