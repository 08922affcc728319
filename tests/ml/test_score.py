"""`predict-buy score` and the Python API: contract cleaning, rejects, atomic outputs, formats."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ml.artefact import load_serving_model
from ml.cleaning import plain_amounts
from ml.cli import app
from ml.contract import FEATURES_BY_NAME, ID_COLUMN, ContractError, clean_row
from ml.data import generate_dataset
from ml.score import (
    BASE_VALUE_COLUMN,
    CONTRIBUTION_PREFIX,
    LONGEST_ROW_PIECES,
    REASON_COLUMN,
    BlockCleaner,
    ScoreError,
    _BadLines,
    _chunks,
    _CsvLinesSink,
    _layout,
    load_model,
    read_blocks,
    rejects_path_for,
    score_file,
    scores_to_frame,
)
from tests.moto_server import AWS_VARIABLES_TO_CLEAR, TEST_CREDENTIALS, MotoServer
from tests.service.model_factory import MODEL_VERSION, THRESHOLD, write_model_dir

OUTPUT_COLUMNS = [ID_COLUMN, "predicted_class", "probability", "threshold", "model_version"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def raw_frame() -> pd.DataFrame:
    """Synthetic raw rows (dirt included: '£1,623.85 ', '69.0', blanks), all cells text."""
    frame, _ = generate_dataset(3_000, seed=5)
    return frame.astype(str)


# Rows that break the contract, each with the field its reason must name.
BAD_ROWS = [
    ({"Age": "17.0"}, "Age: out of range"),
    ({"Gender": "M"}, "Gender: unknown category"),
    ({"AnnualPremium": "lots"}, "AnnualPremium: not a number"),
    ({"RegionID": "28.5"}, "RegionID: not a whole number"),
    ({ID_COLUMN: ""}, "id: blank"),
    ({ID_COLUMN: "abc"}, "id: not a whole number"),
]


@pytest.fixture(scope="module")
def dirty_file(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> Path:
    """The raw rows with BAD_ROWS written over rows 10, 20, ... and a malformed last line."""
    frame = raw_frame.copy()
    for k, (cells, _) in enumerate(BAD_ROWS):
        for column, value in cells.items():
            frame.loc[10 * (k + 1), column] = value
    path = tmp_path_factory.mktemp("input") / "new.csv"
    frame.to_csv(path, index=False)
    with path.open("a") as handle:
        handle.write("999999,Male,40.0,1.0,28.0,0.0,1-2 Year,Yes,100.0,26,10,0,extra\n")
    return path


def _usable(raw_frame: pd.DataFrame) -> pd.DataFrame:
    bad = [10 * (k + 1) for k in range(len(BAD_ROWS))]
    return raw_frame.drop(index=bad)


def test_scores_every_usable_row_with_the_contract_and_rejects_the_rest(
    dirty_file: Path, raw_frame: pd.DataFrame, model_dir: Path, tmp_path: Path
) -> None:
    # given a dirty raw file with rows that break the contract and a malformed line
    output = tmp_path / "scores.csv"
    # when it is scored
    summary = score_file(str(dirty_file), output, load_model(model_dir))
    # then each usable row has the probability the served model gives its contract-cleaned values
    scores = scores_to_frame(output)
    usable = _usable(raw_frame)
    assert list(scores.columns) == OUTPUT_COLUMNS
    assert scores[ID_COLUMN].tolist() == usable[ID_COLUMN].tolist(), "ids in input order"
    compiled, _ = load_serving_model(model_dir)
    expected = [compiled.predict_proba_record(r) for r in usable.to_dict("records")]
    assert np.array_equal(scores["probability"].to_numpy(), np.array(expected)), (
        "the file scorer and the one-row path must give the very same floats"
    )
    assert (scores["predicted_class"] == (scores["probability"] >= THRESHOLD)).all()
    assert (scores["threshold"] == THRESHOLD).all()
    assert (scores["model_version"] == MODEL_VERSION).all()
    # and every bad row is in the rejects file with a reason naming its field
    rejects = pd.read_csv(rejects_path_for(output), dtype=str, keep_default_na=False)
    assert len(rejects) == len(BAD_ROWS) + 1
    for (_, reason), got in zip(BAD_ROWS, rejects[REASON_COLUMN], strict=False):
        assert got.startswith(reason), f"expected {reason!r}, got {got!r}"
    assert "malformed line: expected 12 fields, got 13" in rejects[REASON_COLUMN].iloc[-1]
    assert (summary.rows, summary.scored, summary.rejected) == (
        len(raw_frame) + 1,
        len(usable),
        len(BAD_ROWS) + 1,
    )


def test_parquet_output_holds_the_same_scores(
    dirty_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    # given the same input scored to CSV and to Parquet
    model = load_model(model_dir)
    score_file(str(dirty_file), tmp_path / "a.csv", model)
    score_file(str(dirty_file), tmp_path / "b.parquet", model)
    # then both files hold the same rows and values
    csv_scores, parquet_scores = (scores_to_frame(tmp_path / n) for n in ("a.csv", "b.parquet"))
    assert pq.read_schema(tmp_path / "b.parquet").names == OUTPUT_COLUMNS
    pd.testing.assert_frame_equal(csv_scores, parquet_scores, check_dtype=False)


@pytest.mark.parametrize("explain", [False, True])
def test_the_csv_output_is_what_pyarrows_csv_writer_writes(
    dirty_file: Path, model_dir: Path, tmp_path: Path, explain: bool
) -> None:
    # given the same input scored to CSV and to Parquet
    model = load_model(model_dir)
    score_file(str(dirty_file), tmp_path / "s.csv", model, explain=explain)
    score_file(str(dirty_file), tmp_path / "s.parquet", model, explain=explain)
    # when the Parquet rows are written by pyarrow's own CSV writer (quoting what needs it)
    expected = io.BytesIO()
    options = pacsv.WriteOptions(quoting_style="needed")
    pacsv.write_csv(pq.read_table(tmp_path / "s.parquet"), expected, write_options=options)
    # then the scorer's CSV has the very same bytes
    assert (tmp_path / "s.csv").read_bytes() == expected.getvalue()


def test_the_csv_writer_quotes_and_formats_as_pyarrow_does(tmp_path: Path) -> None:
    # given columns with quotes, commas, line ends and nulls, odd floats, and constant columns
    table = pa.table(
        {
            "id": pa.array(['a"b', "c,d", "e\nf", '""', "", "plain"], pa.string()),
            "note": pa.array(['x"', None, "y", "", "z,", "w"], pa.string()),
            "flag": pa.array([-128, -1, 0, 1, 127, None], pa.int8()),
            "number": pa.array([1e-7, 1e22, -0.0, float("nan"), float("inf"), None]),
            "constant": pa.array([0.27853391760014073] * 6),
            "version": pa.array(['1.0 "beta", 2'] * 6),
        }
    )
    constants = {"constant": 0.27853391760014073, "version": '1.0 "beta", 2'}
    # when the scores' CSV writer writes it (constants given once) in two blocks
    sink = _CsvLinesSink(tmp_path / "out.csv", table.schema, constants)
    for part in (table.slice(0, 4), table.slice(4)):
        sink.write(sink.prepare(part.drop_columns(list(constants))))
    sink.close()
    sink.commit()
    # then the file is byte for byte what pyarrow's CSV writer writes
    expected = io.BytesIO()
    options = pacsv.WriteOptions(quoting_style="needed")
    pacsv.write_csv(table, expected, write_options=options)
    assert (tmp_path / "out.csv").read_bytes() == expected.getvalue()
    assert sink.rows == 6


def test_explain_columns_add_up_to_the_logit(
    dirty_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    # given a file scored with explanations
    model = load_model(model_dir)
    score_file(str(dirty_file), tmp_path / "x.csv", model, explain=True)
    scores = scores_to_frame(tmp_path / "x.csv")
    contributions = [c for c in scores.columns if c.startswith(CONTRIBUTION_PREFIX)]
    # then there is one column per feature group, and base + contributions = logit(probability)
    assert len(contributions) == len(model.model.groups)
    p = scores["probability"].to_numpy()
    total = scores[BASE_VALUE_COLUMN].to_numpy() + scores[contributions].sum(axis=1).to_numpy()
    assert np.max(np.abs(total - np.log(p / (1 - p)))) < 1e-9


def test_predict_frame_is_the_python_api(raw_frame: pd.DataFrame, model_dir: Path) -> None:
    # given raw rows in a DataFrame (mixed text and numbers, an index of the caller's own)
    frame = _usable(raw_frame).head(200).set_index(ID_COLUMN)
    frame["Age"] = pd.to_numeric(frame["Age"], errors="coerce")  # NaN: unknown
    # when predict_frame is called with explanations
    result = load_model(model_dir).predict_frame(frame, explain=True)
    # then it answers per row, on the same index, what the contract's clean_row + tables give
    compiled, _ = load_serving_model(model_dir)
    expected = [compiled.predict_proba_one(clean_row(r)) for r in frame.to_dict("records")]
    assert result.index.equals(frame.index)
    assert result["probability"].tolist() == expected
    logit = np.log(result["probability"] / (1 - result["probability"]))
    terms = result.filter(like=CONTRIBUTION_PREFIX).sum(axis=1) + result[BASE_VALUE_COLUMN]
    assert np.max(np.abs(terms - logit)) < 1e-9


def test_predict_frame_names_the_bad_row_and_field(
    raw_frame: pd.DataFrame, model_dir: Path
) -> None:
    frame = raw_frame.head(5).copy()
    frame.loc[3, "VehicleAge"] = "new"
    with pytest.raises(ContractError, match=r"VehicleAge: unknown category.*\(row 3\)"):
        load_model(model_dir).predict_frame(frame)


# Amount spellings: the bulk parser must agree with the contract's clean_value on every one.
AMOUNTS = [
    "£1,623.85 ", "£131.50 ", "2630.0", "2630", "  £40,000 ", "£1,000,000.00", "£1,000,000.01",
    "1,2,3", "£ 1,623.85", "£1,623.85\t", "1e3", "-5", "+5", "", "   ", "£", "02630.50",
    "12,34.5", "£1,623,85", "1623.", ".5", "£0.00", "999999.999999", "1,000", "£9,999,999",
    "123456789012.5", "1,623.85£",
    "£1,623.85 £", "£+5", " £ 5", "5,000.00.00", "1,000,000", "1000000.000001", "0,123", "£٣",
    "£1,000,000", "1 000", "£1,623.8500000000001", "nan", "inf", "1_000", "£-0", "0000.5",
]  # fmt: skip


def test_bulk_amount_parsing_agrees_with_the_contract() -> None:
    # given dirty amounts and the contract's per-value cleaning of each
    feature = FEATURES_BY_NAME["AnnualPremium"]
    rng = np.random.default_rng(3)
    amounts = AMOUNTS + [f"£{v:,.2f} " for v in rng.uniform(0, 2e6, 2_000)]
    numbers, left = plain_amounts(feature, pa.array(amounts))
    for text, number, slow in zip(amounts, numbers, left, strict=True):
        try:
            expected = feature.clean_value(text)
        except ContractError:
            assert slow, f"{text!r} breaks the contract: it must go to clean_value"
            continue
        if slow:
            continue  # clean_value reads it; the bulk path only takes the plain spelling
        assert number == expected, f"{text!r}: bulk {number!r}, contract {expected!r}"
    assert not left[0] and not left[1], "the usual spellings take the bulk path"


def test_bulk_amount_parsing_of_a_column_of_plain_amounts_only() -> None:
    # given only the usual spellings (the path where no row is left for clean_value), and none
    feature = FEATURES_BY_NAME["AnnualPremium"]
    rng = np.random.default_rng(4)
    amounts = [f"£{v:,.2f} " for v in rng.uniform(0, 2e6, 1_000)]
    numbers, left = plain_amounts(feature, pa.array(amounts))
    # then every amount in range is the contract's float, and those beyond it are left
    for text, number, slow in zip(amounts, numbers, left, strict=True):
        if slow:
            with pytest.raises(ContractError, match="out of range"):
                feature.clean_value(text)
        else:
            assert number == feature.clean_value(text), text
    assert 0 < left.sum() < len(amounts), "the table has amounts in and out of range"
    empty_numbers, empty_left = plain_amounts(feature, pa.array([], pa.string()))
    assert len(empty_numbers) == len(empty_left) == 0


def test_the_cleaner_reads_dictionary_and_text_columns_alike(dirty_file: Path) -> None:
    # given a block as read (features with few values dictionary-encoded) and as plain text
    batch = next(read_blocks(dirty_file, _BadLines()))
    assert pa.types.is_dictionary(batch.column("Gender").type), "the reader encodes them"
    text = pa.RecordBatch.from_arrays(
        [pc.cast(column, pa.string()) for column in batch.columns], names=batch.schema.names
    )
    # when both are cleaned
    encoded, plain = BlockCleaner().clean(batch), BlockCleaner().clean(text)
    # then the numbers, usable rows and reasons are the same
    np.testing.assert_array_equal(encoded.matrix, plain.matrix)
    assert np.array_equal(encoded.usable, plain.usable)
    assert encoded.problems == plain.problems and encoded.problems, "some rows break the contract"


def _with_malformed_lines(frame: pd.DataFrame, newline: str, last_newline: bool) -> bytes:
    """The rows as CSV text with three malformed lines among them (13, 11 and 14 fields)."""
    lines = frame.to_csv(index=False).splitlines()
    lines.insert(40, "1,Male,40.0,1.0,28.0,0.0,1-2 Year,Yes,100.0,26,10,0,extra")
    lines.insert(150, "2,Male,40.0,1.0,28.0,0.0,1-2 Year,Yes,100.0,26,10")
    lines.append("3,Male,40.0,1.0,28.0,0.0,1-2 Year,Yes,100.0,26,10,0,a,b")
    return (newline.join(lines) + (newline if last_newline else "")).encode()


@pytest.mark.parametrize("block_bytes", [50, 3_000, 1 << 20])
@pytest.mark.parametrize(("newline", "last_newline"), [("\n", True), ("\r\n", False)])
def test_the_file_is_scored_alike_whatever_its_pieces(
    raw_frame: pd.DataFrame,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block_bytes: int,
    newline: str,
    last_newline: bool,
) -> None:
    # given rows with malformed lines, and pieces smaller than a line, of a few lines, or all
    source = tmp_path / "in.csv"
    source.write_bytes(_with_malformed_lines(raw_frame.head(300), newline, last_newline))
    model = load_model(model_dir)
    # when the file is scored in pieces of that size
    monkeypatch.setattr("ml.score.BLOCK_BYTES", block_bytes)
    summary = score_file(str(source), tmp_path / "out.csv", model)
    # then every row is scored once, in input order, as the one-row path scores it
    scores = scores_to_frame(tmp_path / "out.csv")
    assert scores[ID_COLUMN].tolist() == raw_frame[ID_COLUMN].head(300).tolist()
    compiled, _ = load_serving_model(model_dir)
    expected = [compiled.predict_proba_record(r) for r in raw_frame.head(300).to_dict("records")]
    assert scores["probability"].tolist() == expected
    # and the malformed lines are rejected in the order they come
    rejects = pd.read_csv(rejects_path_for(tmp_path / "out.csv"), dtype=str)
    got = [reason.split(": '")[0] for reason in rejects[REASON_COLUMN]]
    assert got == [f"malformed line: expected 12 fields, got {n}" for n in (13, 11, 14)]
    assert (summary.rows, summary.scored, summary.rejected) == (303, 300, 3)


@pytest.mark.parametrize("block_bytes", [64, 1_000, 1_500])
def test_line_ends_inside_quoted_amounts_do_not_cut_rows_between_pieces(
    raw_frame: pd.DataFrame,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    block_bytes: int,
) -> None:
    # given rows whose quoted amounts end in a line end (the contract strips it), and doubled
    # quotes in a quoted value too, in pieces that often end inside a quoted amount
    rows = raw_frame.head(300).copy()
    rows["AnnualPremium"] = rows["AnnualPremium"].str.strip() + "\n"
    rows.loc[rows.index[::7], "VehicleAge"] = '1-2 "Year"'  # quoted, its quotes doubled
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    assert source.read_text().count('\n"') >= 300, "every amount holds a line end"
    # when the file is scored in pieces of that size
    monkeypatch.setattr("ml.score.BLOCK_BYTES", block_bytes)
    summary = score_file(str(source), tmp_path / "out.csv", load_model(model_dir))
    # then every row is whole: scored or refused by the contract once, none malformed
    rejects = pd.read_csv(rejects_path_for(tmp_path / "out.csv"), dtype=str)
    assert not any(r.startswith("malformed") for r in rejects[REASON_COLUMN]), rejects
    assert summary.rows == 300
    assert all(r.startswith("VehicleAge: unknown category") for r in rejects[REASON_COLUMN])
    assert summary.rejected == len(rows.index[::7])


def test_a_quote_inside_an_unquoted_cell_keeps_pieces_bounded_and_rows_whole(
    raw_frame: pd.DataFrame, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stray quote inside an unquoted cell (the parser reads it as text), early on
    rows = raw_frame.head(300).to_csv(index=False).splitlines()
    rows[3] = rows[3].replace("Male", 'Ma"le', 1).replace("Female", 'Fem"ale', 1)
    source = tmp_path / "in.csv"
    source.write_text("\n".join(rows) + "\n")
    assert source.read_text().count('"') % 2 == 1, "one quote without its pair"
    # when it is cut into small pieces
    monkeypatch.setattr("ml.score.BLOCK_BYTES", 1_000)
    layout = _layout(source)
    pieces = [bytes(piece) for piece in _chunks(layout)]
    # then the count of quotes, off after the stray one, makes one piece grow to the limit only,
    # and the pieces hold every line once, each cut at a line end
    limit = LONGEST_ROW_PIECES * 1_000
    assert max(len(piece) for piece in pieces) <= limit, [len(piece) for piece in pieces]
    assert sum(len(piece) > 1_000 for piece in pieces) == 1, [len(piece) for piece in pieces]
    assert b"".join(pieces) == source.read_bytes()[layout.data_start :]
    assert all(piece.endswith(b"\n") for piece in pieces)
    # and scoring refuses only the row with the stray quote, by the contract
    summary = score_file(str(source), tmp_path / "out.csv", load_model(model_dir))
    rejects = pd.read_csv(rejects_path_for(tmp_path / "out.csv"), dtype=str)
    assert (summary.rows, summary.scored, summary.rejected) == (300, 299, 1)
    assert rejects[REASON_COLUMN].str.startswith("Gender: unknown category").all()


def test_blank_lines_before_the_header_are_skipped(
    raw_frame: pd.DataFrame, model_dir: Path, tmp_path: Path
) -> None:
    # given the same rows with and without blank lines before the header
    rows = raw_frame.head(50).to_csv(index=False)
    (tmp_path / "plain.csv").write_text(rows)
    (tmp_path / "blank.csv").write_text("\n \n" + rows)
    model = load_model(model_dir)
    # when both are scored
    summary = score_file(str(tmp_path / "blank.csv"), tmp_path / "blank.out.csv", model)
    score_file(str(tmp_path / "plain.csv"), tmp_path / "plain.out.csv", model)
    # then the header is not read as a row: the same scores, nothing rejected
    assert (summary.scored, summary.rejected) == (50, 0)
    assert (tmp_path / "blank.out.csv").read_bytes() == (tmp_path / "plain.out.csv").read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"id;Gender;Age\n1;Male;40\n", "wrong delimiter in the header (found ';')"),
        (b"id,Gender,Age\n1,Male,40\n", "missing columns ['HasDrivingLicense'"),
        (b"id,id,Gender\n", "columns repeated in the header: ['id']"),
    ],
)
def test_a_file_that_is_not_the_raw_layout_is_refused(
    tmp_path: Path, model_dir: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    with pytest.raises(ScoreError, match=re.escape(message)):
        score_file(str(source), tmp_path / "out.csv", load_model(model_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"], "nothing written"


def test_header_only_and_missing_files_are_refused(
    tmp_path: Path, model_dir: Path, raw_frame: pd.DataFrame
) -> None:
    header_only = tmp_path / "header.csv"
    raw_frame.head(0).to_csv(header_only, index=False)
    model = load_model(model_dir)
    with pytest.raises(ScoreError, match="has a header but no data rows"):
        score_file(str(header_only), tmp_path / "out.csv", model)
    with pytest.raises(ScoreError, match="file not found"):
        score_file(str(tmp_path / "absent.csv"), tmp_path / "out.csv", model)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "bad_line",
    [
        b"1,Male,\xff\xfe,1,1,1,1,1,1,1,1,1\n",  # a feature read dictionary-encoded (Age)
        b"\xff1,Male,40,1,1,1,1,1,1,1,1,1\n",  # the id
        b"1,Male,40,1,1,1,1,1,\xfe1,1,1,1\n",  # an amount
    ],
)
def test_a_failure_midway_leaves_the_previous_output_untouched(
    tmp_path: Path, model_dir: Path, raw_frame: pd.DataFrame, bad_line: bytes
) -> None:
    # given an earlier output, and an input whose bytes turn invalid far into the file
    output = tmp_path / "scores.csv"
    output.write_text("earlier scores\n")
    source = tmp_path / "in.csv"
    big = pd.concat([raw_frame] * 30, ignore_index=True)
    source.write_bytes(big.to_csv(index=False).encode() + bad_line)
    # when scoring fails on them
    with pytest.raises(ScoreError, match="not UTF-8"):
        score_file(str(source), output, load_model(model_dir))
    # then the old output is as it was and no temporary or rejects file is left
    assert output.read_text() == "earlier scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "scores.csv"]


def test_a_model_file_that_does_not_match_its_sha256_is_refused(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model")
    with (model_dir / "model.npz").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ScoreError, match="sha256"):
        load_model(model_dir)


def test_progress_reports_rows_and_rate(
    dirty_file: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given progress every block (small blocks, no wait)
    monkeypatch.setattr("ml.score.PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr("ml.score.BLOCK_BYTES", 16_384)
    lines: list[str] = []
    score_file(str(dirty_file), tmp_path / "o.csv", load_model(model_dir), progress=lines.append)
    # then several lines count rows upwards with a rate
    assert len(lines) >= 3, lines
    counts = [int(line.split(" rows")[0].replace(",", "")) for line in lines]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert all(line.endswith("rows/s") for line in lines)


def test_the_command_line_scores_and_reports(
    dirty_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    # when `predict-buy score` runs
    output = tmp_path / "out" / "scores.parquet"
    result = CliRunner().invoke(
        app,
        ["score", str(dirty_file), "-o", str(output), "--model-dir", str(model_dir), "--explain"],
    )
    # then it writes both files and says how many rows went where
    assert result.exit_code == 0, result.output
    assert output.is_file() and (output.parent / "scores.rejects.csv").is_file()
    assert BASE_VALUE_COLUMN in pd.read_parquet(output).columns
    assert "2,994 of 3,001 rows scored" in result.output, result.output
    assert "7 rejected" in result.output, result.output


def test_the_command_line_explains_a_bad_input(model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = CliRunner().invoke(
        app, ["score", str(missing), "-o", str(tmp_path / "o.csv"), "--model-dir", str(model_dir)]
    )
    assert result.exit_code == 2
    assert f"score: {missing}: file not found" in result.output


# -- s3:// input over real HTTP (moto_server) ----------------------------------------------------
@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


def test_an_s3_input_is_scored_like_a_local_one(
    moto: MotoServer,
    dirty_file: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the dirty file in a bucket
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    moto.reset()
    s3 = boto3.client("s3", endpoint_url=moto.url)
    s3.create_bucket(Bucket="scoring")
    s3.upload_file(str(dirty_file), "scoring", "new_ML_data/new.csv")
    model = load_model(model_dir)
    # when it is scored from s3:// and from disk
    url = "s3://scoring/new_ML_data/new.csv"
    score_file(url, tmp_path / "s3.csv", model, endpoint_url=moto.url)
    score_file(str(dirty_file), tmp_path / "local.csv", model)
    # then the outputs are identical, and a missing key is a clear error
    assert (tmp_path / "s3.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    with pytest.raises(ScoreError, match="object missing"):
        score_file("s3://scoring/absent.csv", tmp_path / "x.csv", model, endpoint_url=moto.url)
    assert not math.isnan(model.threshold)


def test_the_predict_buy_command_scores_from_any_folder(
    dirty_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    # given the `predict-buy` launcher make writes into .venv/bin
    import subprocess
    import sys

    from tests.conftest import require

    launcher = Path(sys.executable).with_name("predict-buy")
    require(launcher.is_file(), f"{launcher} is missing: build the environment with `make venv`")
    # when it runs from another folder
    completed = subprocess.run(
        [str(launcher), "score", str(dirty_file), "-o", "out.csv", "--model-dir", str(model_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # then it scores like `python -m ml.cli score`
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "out.csv").is_file() and (tmp_path / "out.rejects.csv").is_file()
    assert "2,994 of 3,001 rows scored" in completed.stderr
