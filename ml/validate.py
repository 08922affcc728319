"""Validate stage: check raw files against the feature contract, keep usable rows, quarantine the
rest with their reasons, and report problems by column and reason.

A file that cannot be read as the raw layout raises DatasetError naming the real cause: missing,
empty, gzip-compressed, NUL bytes, not UTF-8, wrong delimiter, a header in the wrong case, a
column repeated in the header, a trailing comma on every row, missing columns, no label. Rows are
never dropped silently: a row with a value that breaks the contract (or an implausible one, such
as a premium of 1.56), a blank or invalid label, or a repeated id goes to the quarantine file with
its reason. A blank feature cell is not a problem: it means unknown, which the model handles.

The stage is all-or-nothing: both files are checked (each against the maximum quarantined share,
and the test file against the training file: shared ids or identical rows) before either is
written, and the outputs replace the previous ones in one move.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.artefact import write_atomic
from ml.cleaning import clean_column
from ml.contract import FEATURES, ID_COLUMN, RAW_COLUMNS, TARGET
from ml.csv_text import minimally_quoted, write_lines
from ml.params import ValidateParams, load_params
from ml.paths import (
    RAW_DIR,
    TEST_FILE,
    TRAIN_FILE,
    VALIDATED_DIR,
    VALIDATION_DETAILS,
    VALIDATION_REPORT,
)
from ml.progress import say, skip_exit_collection, step

REPORT_FILE: Final = VALIDATION_REPORT
DETAILS_FILE: Final = VALIDATION_DETAILS
REASON_COLUMN: Final = "reason"
# Fewest rows of each class that training (a stratified held-out share, then early stopping's
# own split) and evaluation can work with.
MIN_ROWS_PER_CLASS: Final = 20
_SCAN_BLOCK: Final = 1 << 20
_SAMPLE_LINES: Final = 50
# Rows joined into lines at a time: bounds the memory their text takes on millions of rows.
WRITE_CHUNK_ROWS: Final = 200_000
_MAGIC: Final = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive"}


class DatasetError(ValueError):
    """A dataset cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ValidationResult:
    """Usable rows (raw text kept), quarantined rows with a reason, and counts by column."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict[str, dict[str, int]]

    def describe(self) -> list[str]:
        """One line per column with problems, e.g. "Age: 312 blank, 4 out of range"."""
        lines = []
        for column, counts in self.summary.items():
            if counts:
                parts = ", ".join(f"{n:,} {reason}" for reason, n in counts.items())
                lines.append(f"{column}: {parts}")
        return lines

    def problems(self) -> dict[str, int]:
        """Quarantine counts by "column: reason", blanks (which are not problems) left out."""
        return {
            f"{column}: {reason}": n
            for column, counts in self.summary.items()
            for reason, n in counts.items()
            if not reason.startswith("blank (unknown)")
        }


def _scan_bytes(path: Path) -> None:
    """Read the file once in blocks: refuse compressed files, NUL bytes and invalid UTF-8, naming
    the offset, without holding the whole file in memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    seen_text = False
    with path.open("rb") as handle:
        while block := handle.read(_SCAN_BLOCK):
            if offset == 0:
                for magic, what in _MAGIC.items():
                    if block.startswith(magic):
                        raise DatasetError(
                            f"{path}: the file is {what}, not CSV text; decompress it first "
                            "(e.g. `gunzip -c train.csv.gz > train.csv`)"
                        )
                if block.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise DatasetError(f"{path}: UTF-16 text; save the file as UTF-8")
            nul = block.find(b"\0")
            if nul >= 0:
                raise DatasetError(
                    f"{path}: NUL byte at offset {offset + nul}; a CSV has none (a binary file, "
                    "UTF-16 text, or a file cut off while being written?)"
                )
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                at = offset + error.start
                raise DatasetError(
                    f"{path}: not UTF-8 text (byte {block[error.start]:#04x} at offset {at}); "
                    "save the file as UTF-8"
                ) from error
            seen_text = seen_text or bool(block.strip())
            offset += len(block)
    if not seen_text:
        raise DatasetError(f"{path}: file is empty (expected a header line and rows)")


def _first_lines(path: Path) -> list[list[str]]:
    """The header and the first few data rows, parsed as CSV; blank lines skipped."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = []
        for row in csv.reader(handle):
            if row and any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) > _SAMPLE_LINES:
                break
    return rows


def _check_header(path: Path, rows: list[list[str]]) -> None:
    header = [name.strip() for name in rows[0]]
    raw_header = ",".join(rows[0])
    if len(header) == 1:
        used = next((d for d in (";", "\t", "|") if d in raw_header), None)
        found = f"found {used!r}" if used else "found no delimiter"
        raise DatasetError(f"{path}: wrong delimiter in the header ({found}); expected ','")
    repeated = sorted({name for name in header if header.count(name) > 1 and name})
    if repeated:
        raise DatasetError(f"{path}: columns repeated in the header: {repeated}")
    data = rows[1:]
    if header[-1] == "" and all(len(row) == len(header) and not row[-1].strip() for row in data):
        raise DatasetError(
            f"{path}: every line ends with a comma (an empty last column); remove the trailing "
            "commas"
        )
    if data and all(len(row) == len(header) + 1 and not row[-1].strip() for row in data):
        raise DatasetError(
            f"{path}: every row ends with a trailing comma ({len(header) + 1} fields, the header "
            f"has {len(header)}); remove the trailing commas"
        )
    if "" in header:
        raise DatasetError(f"{path}: the header has an empty column name at position "
                           f"{header.index('') + 1}")  # fmt: skip
    by_lower = {name.lower(): name for name in header}
    wrong_case = {
        by_lower[c.lower()]: c for c in RAW_COLUMNS if c not in header and c.lower() in by_lower
    }
    if wrong_case:
        pairs = ", ".join(f"{found!r} should be {wanted!r}" for found, wanted in wrong_case.items())
        raise DatasetError(f"{path}: header names in the wrong case ({pairs}); column names are "
                           f"case-sensitive: {list(RAW_COLUMNS)}")  # fmt: skip
    if TARGET not in header:
        raise DatasetError(f"{path}: no label column {TARGET!r}; the raw layout is {RAW_COLUMNS}")
    missing = [c for c in RAW_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}; the raw layout is {RAW_COLUMNS}")


def read_raw_csv(path: Path) -> pd.DataFrame:
    """Read a raw CSV as text cells, failing with a named problem if it is not the raw layout.

    Columns are pandas categories of the raw text: raw files repeat values heavily, so 2M rows
    take a few hundred MB instead of a Python string per cell; the id column stays text.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    _scan_bytes(path)
    rows = _first_lines(path)
    _check_header(path, rows)
    names = [name.strip() for name in rows[0]]
    if len(rows) == 1:
        raise DatasetError(f"{path}: has a header but no data rows")
    try:
        frame = pd.read_csv(
            path,
            encoding="utf-8-sig",
            header=0,
            names=names,
            dtype={c: (str if c == ID_COLUMN else "category") for c in names},
            keep_default_na=False,
            na_values=[],
            skipinitialspace=False,
            index_col=False,
            # In one piece: read piecewise, pandas merges the categories of every piece, which
            # for amounts (nearly one per row) took 3.5 times as long and more memory.
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise DatasetError(f"{path}: not a well-formed CSV ({error})") from error
    if frame.empty:
        raise DatasetError(f"{path}: has a header but no data rows")
    return frame[list(RAW_COLUMNS)]


def _short(reason: str) -> str:
    return reason.split(";")[0]


def _stripped(column: pd.Series) -> pd.Series:
    """Text with surrounding spaces removed, stripped once per category for categories."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories.astype(str).str.strip().to_numpy(dtype=object)
        codes = column.cat.codes.to_numpy()
        return pd.Series(np.append(categories, "")[codes], index=column.index, dtype=object)
    return column.astype(str).str.strip()


def validate_frame(frame: pd.DataFrame) -> ValidationResult:
    """Split raw rows into usable and quarantined ones and count problems by column."""
    reasons = np.full(len(frame), "", dtype=object)
    summary: dict[str, dict[str, int]] = {}

    def flag(column: str, bad: np.ndarray, text: np.ndarray | str) -> None:
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        picked = np.full(int(bad.sum()), text, dtype=object) if isinstance(text, str) else text[bad]
        current = reasons[bad]
        reasons[bad] = np.where(current == "", "", current + "; ") + column + ": " + picked
        counts = summary.setdefault(column, {})
        for reason, n in pd.Series(picked).map(_short).value_counts().items():
            counts[reason] = counts.get(reason, 0) + int(n)

    ids = frame[ID_COLUMN].astype(str).str.strip()
    id_numbers = _numbers(ids)
    flag(ID_COLUMN, (ids == "").to_numpy(), "blank")
    not_whole = (ids != "") & (id_numbers.isna() | (id_numbers % 1 != 0))
    flag(ID_COLUMN, not_whole.to_numpy(), "not a whole number")
    numbered = id_numbers.notna()
    repeated = numbered & id_numbers.where(numbered).duplicated(keep="first")
    flag(ID_COLUMN, repeated.to_numpy(), "duplicate of an earlier row")

    for feature in FEATURES:
        column = frame[feature.name]
        numbers, problems = clean_column(feature, column)
        blank = np.isnan(numbers) & problems.isna().to_numpy()
        if blank.any():
            summary.setdefault(feature.name, {})["blank (unknown)"] = int(blank.sum())
        flag(feature.name, problems.notna().to_numpy(), problems.to_numpy(dtype=object))
        if feature.plausible_minimum is not None:
            # NaN compares False: unknowns are never implausible.
            flag(
                feature.name,
                numbers < feature.plausible_minimum,
                f"implausible: below {feature.plausible_minimum:,g} (a misread number, such as "
                "1.562 for 1,562?)",
            )

    label = _stripped(frame[TARGET])
    flag(TARGET, (label == "").to_numpy(), "blank")
    invalid = (label != "") & ~label.isin(["0", "1", "0.0", "1.0"])
    flag(TARGET, invalid.to_numpy(), "not 0 or 1")

    bad_rows = reasons != ""
    clean = frame.loc[~bad_rows].reset_index(drop=True)
    clean[TARGET] = label[~bad_rows].str.slice(0, 1).to_numpy()
    quarantine = frame.loc[bad_rows].astype(str).assign(**{REASON_COLUMN: reasons[bad_rows]})
    return ValidationResult(clean, quarantine.reset_index(drop=True), summary)


def validate_csv(path: Path) -> ValidationResult:
    """Read and validate one raw file; DatasetError if the file itself is unusable."""
    return validate_frame(read_raw_csv(path))


def check_trainable(result: ValidationResult, name: str = "dataset") -> None:
    """Raise DatasetError if the usable rows could not train (or evaluate) a classifier."""
    if result.clean.empty:
        problems = "; ".join(result.describe()) or "no rows"
        raise DatasetError(f"{name}: no usable rows ({problems})")
    counts = result.clean[TARGET].value_counts()
    if len(counts) < 2:
        raise DatasetError(
            f"{name}: every usable row has {TARGET}={counts.index[0]}; both 0 and 1 are needed"
        )
    if counts.min() < MIN_ROWS_PER_CLASS:
        raise DatasetError(
            f"{name}: only {counts.min()} usable rows have {TARGET}={counts.idxmin()}; "
            f"at least {MIN_ROWS_PER_CLASS} of each class are needed"
        )


def check_quarantine_share(result: ValidationResult, name: str, maximum: float) -> None:
    """Refuse a file whose share of quarantined rows is above `maximum`, with counts per reason:
    a file that is mostly bad is the wrong file, not one to train on what is left."""
    rows = len(result.clean) + len(result.quarantine)
    share = len(result.quarantine) / rows if rows else 0.0
    if share > maximum:
        counts = "; ".join(f"{reason}: {n:,}" for reason, n in result.problems().items())
        raise DatasetError(
            f"{name}: {len(result.quarantine):,} of {rows:,} rows ({share:.1%}) quarantined, more "
            f"than validate.max_quarantined_share {maximum:.1%} allows ({counts})"
        )


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    # Every column but the id, compared by value (categories of two files may differ).
    columns = [c for c in RAW_COLUMNS if c != ID_COLUMN]
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def overlap(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Test rows that are also in the training file: by id, and as identical rows (every column
    but the id equal)."""
    train_ids = _numbers(train[ID_COLUMN]).dropna()
    test_ids = _numbers(test[ID_COLUMN])
    # pandas' hash table, not np.isin (which sorts or hashes anew): 30 times as fast here.
    identical = pd.Series(_row_hashes(test)).isin(_row_hashes(train))
    return {
        "shared_ids": int(test_ids.isin(train_ids).sum()),
        "identical_rows": int(identical.sum()),
    }


def _numbers(text: pd.Series) -> pd.Series:
    """`pd.to_numeric(text, errors="coerce")`: the number each text spells, NaN if none.

    Arrow's casts read the usual column (every text a number) 30 times as fast: whole numbers
    exactly as int64, others as float64 while below 2**53 (no two large ids made equal by
    rounding). A text Arrow cannot read (a blank, "1,000") leaves the column to pandas, which
    makes it NaN; where Arrow reads a text, it reads the same number pandas does (a test
    compares them).
    """
    cells = pa.array(text, type=pa.string(), from_pandas=True)
    for kind in (pa.int64(), pa.float64()):
        try:
            numbers = pc.cast(cells, kind).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        if kind == pa.int64() or not (np.abs(numbers[np.isfinite(numbers)]) >= 2**53).any():
            return pd.Series(numbers, index=text.index)
        break
    return pd.to_numeric(text, errors="coerce")


def check_overlap(counts: dict[str, int], test_rows: int, params: ValidateParams) -> None:
    """Refuse a test file that shares ids with the training file, or repeats more of its rows
    than chance does (real files repeat about 0.1%): its scores would flatter the model."""
    problems = []
    if counts["shared_ids"]:
        problems.append(
            f"{counts['shared_ids']:,} of its {test_rows:,} ids are in the training file"
        )
    share = counts["identical_rows"] / test_rows if test_rows else 0.0
    if share > params.max_identical_share:
        problems.append(
            f"{counts['identical_rows']:,} of its {test_rows:,} rows ({share:.1%}) are identical "
            f"to training rows, more than validate.max_identical_share "
            f"{params.max_identical_share:.1%} allows"
        )
    if problems:
        raise DatasetError(
            f"{TEST_FILE} overlaps {TRAIN_FILE}: " + "; ".join(problems) + ". A test file must "
            "hold rows the model never saw, or its ROC AUC is flattered"
        )


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame of text and categorical columns as CSV: the very bytes of pandas'
    `frame.to_csv(path, index=False)` (minimal quoting), built by Arrow's kernels, about five
    times as fast on the default 304,000 rows.

    Each text is quoted as pandas quotes it (ml.csv_text.minimally_quoted), once per category
    for a categorical column; the lines are joined and written WRITE_CHUNK_ROWS at a time, which
    bounds the memory their text takes on millions of rows. A frame with a column of another
    kind is written by pandas itself.
    """
    columns = [_csv_text(frame[name]) for name in frame.columns]
    if any(column is None for column in columns):
        frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
        return
    names = minimally_quoted(pa.array([str(name) for name in frame.columns], pa.string()))
    with path.open("wb") as handle:
        handle.write((",".join(names.to_pylist()) + "\n").encode())
        for start in range(0, len(frame), WRITE_CHUNK_ROWS):
            cells = [_as_cells(column.slice(start, WRITE_CHUNK_ROWS)) for column in columns]
            joined = pc.binary_join_element_wise(*cells, ",")
            write_lines(handle, pc.binary_join_element_wise(joined, "", "\n"))


def _csv_text(column: pd.Series) -> pa.Array | None:
    """A column's cells as pandas' CSV writer writes them, as Arrow text (a categorical column
    as a dictionary of quoted texts); None for another kind of column."""
    try:
        if isinstance(column.dtype, pd.CategoricalDtype):
            # The writer turns each category into text with str() and quotes it as needed: done
            # once per category. Code -1, a missing value, is an empty cell.
            categories = column.cat.categories
            if not pd.api.types.is_string_dtype(categories.dtype):
                categories = [str(c) for c in categories]  # numbers: few; str() is the text
            texts = minimally_quoted(pa.array(categories, pa.string()))
            codes = pa.array(column.cat.codes.to_numpy(), mask=column.isna().to_numpy())
            return pa.DictionaryArray.from_arrays(codes, texts)
        if pd.api.types.is_string_dtype(column.dtype):
            return minimally_quoted(pa.array(column, type=pa.string(), from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # objects that are not all text, say
        pass
    return None


def _as_cells(column: pa.Array) -> pa.Array:
    """Plain text, a missing value as an empty cell."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return column.fill_null("") if column.null_count else column


def _replace_dir(staging: Path, out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old."))
        os.replace(out_dir, old / out_dir.name)
        os.replace(staging, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(staging, out_dir)


def run(
    raw_dir: Path,
    out_dir: Path,
    report_file: Path,
    params: ValidateParams | None = None,
    details_file: Path | None = None,
) -> dict[str, object]:
    """Validate train.csv and test.csv of raw_dir into out_dir; return the report.

    Nothing is written unless both files pass every check.
    """
    params = params or ValidateParams()
    details_file = details_file or report_file.with_name(DETAILS_FILE.name)
    results: dict[str, ValidationResult] = {}
    for name in (TRAIN_FILE, TEST_FILE):
        path = raw_dir / name
        with step("validate", f"checking {path} against the feature contract"):
            result = validate_csv(path)
        rows = len(result.clean) + len(result.quarantine)
        say("validate", f"{name}: {len(result.clean):,} of {rows:,} rows usable, "
                        f"{len(result.quarantine):,} quarantined")  # fmt: skip
        for line in result.describe():
            say("validate", f"  {line}")
        check_trainable(result, str(path))
        check_quarantine_share(result, str(path), params.max_quarantined_share)
        results[name] = result
    counts = overlap(results[TRAIN_FILE].clean, results[TEST_FILE].clean)
    say("validate", f"{TEST_FILE} vs {TRAIN_FILE}: {counts['shared_ids']:,} shared ids, "
                    f"{counts['identical_rows']:,} identical rows")  # fmt: skip
    check_overlap(counts, len(results[TEST_FILE].clean), params)

    report: dict[str, object] = {}
    details: dict[str, object] = {}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        with step("validate", f"writing usable and quarantined rows to {out_dir}"):
            for name, result in results.items():
                stem = Path(name).stem
                write_csv(result.clean, staging / name)
                write_csv(result.quarantine, staging / f"quarantine_{stem}.csv")
                report[stem] = {
                    "rows": len(result.clean) + len(result.quarantine),
                    "usable": len(result.clean),
                    "quarantined": len(result.quarantine),
                    "positive_rate": round(float(np.mean(result.clean[TARGET] == "1")), 6),
                }
                details[stem] = result.summary
            report["test_overlap"] = counts
            _replace_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_atomic(details_file, json.dumps(details, indent=2) + "\n")
    write_atomic(report_file, json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    say("validate", f"start: {RAW_DIR}/{TRAIN_FILE} and {TEST_FILE} -> {VALIDATED_DIR}/")
    try:
        run(RAW_DIR, VALIDATED_DIR, REPORT_FILE, load_params().validation, DETAILS_FILE)
    except DatasetError as error:
        sys.exit(f"validate: {error}")


if __name__ == "__main__":
    main()
    skip_exit_collection()
