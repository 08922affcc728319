"""Validate stage: check raw files against the feature contract, keep usable rows, quarantine the
rest with their reasons, and report problems by column and reason.

A file that cannot be read as the raw layout (missing, empty, header only, wrong delimiter, not
UTF-8, missing columns, no label) raises DatasetError naming the problem. Rows are never dropped
silently: a row with a value that breaks the contract, a blank or invalid label, or a repeated id
goes to the quarantine file with its reason. A blank feature cell is not a problem: it means
unknown, which the model handles; blanks are counted in the report.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from ml.artefact import write_atomic
from ml.contract import FEATURES, ID_COLUMN, RAW_COLUMNS, TARGET
from ml.data import RAW_DIR, TEST_FILE, TRAIN_FILE
from ml.features import clean_column
from ml.progress import say

VALIDATED_DIR: Final = Path("data/validated")
REPORT_FILE: Final = Path("reports/validation.json")
REASON_COLUMN: Final = "reason"
# Fewest rows of each class that training (a stratified held-out share, then early stopping's
# own split) and evaluation can work with.
MIN_ROWS_PER_CLASS: Final = 20


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


def read_raw_csv(path: Path) -> pd.DataFrame:
    """Read a raw CSV as text cells, failing with a named problem if it is not the raw layout."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    data = path.read_bytes()
    if not data.strip():
        raise DatasetError(f"{path}: file is empty (expected a header line and rows)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from error
    header = next(line for line in text.splitlines() if line.strip())
    if "," not in header:
        used = next((d for d in (";", "\t", "|") if d in header), None)
        found = f"found {used!r}" if used else "found no delimiter"
        raise DatasetError(f"{path}: wrong delimiter in the header ({found}); expected ','")
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[],
            skipinitialspace=False,
        )
    except pd.errors.ParserError as error:
        raise DatasetError(f"{path}: not a well-formed CSV ({error})") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    repeated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if repeated:
        raise DatasetError(f"{path}: columns repeated in the header: {repeated}")
    if TARGET not in frame.columns:
        raise DatasetError(f"{path}: no label column {TARGET!r}; the raw layout is {RAW_COLUMNS}")
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}; the raw layout is {RAW_COLUMNS}")
    if frame.empty:
        raise DatasetError(f"{path}: has a header but no data rows")
    return frame[list(RAW_COLUMNS)]


def _short(reason: str) -> str:
    return reason.split(";")[0]


def validate_frame(frame: pd.DataFrame) -> ValidationResult:
    """Split raw rows into usable and quarantined ones and count problems by column."""
    reasons = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    summary: dict[str, dict[str, int]] = {}

    def flag(column: str, bad: pd.Series, text: pd.Series | str) -> None:
        if not bad.any():
            return
        if isinstance(text, str):
            text = pd.Series(text, index=frame.index)
        current = reasons[bad]
        reasons[bad] = current.where(current == "", current + "; ") + column + ": " + text[bad]
        counts = summary.setdefault(column, {})
        for reason, n in text[bad].map(_short).value_counts().items():
            counts[reason] = counts.get(reason, 0) + int(n)

    ids = frame[ID_COLUMN].str.strip()
    id_numbers = pd.to_numeric(ids, errors="coerce")
    flag(ID_COLUMN, ids == "", "blank")
    flag(ID_COLUMN, (ids != "") & (id_numbers.isna() | (id_numbers % 1 != 0)), "not a whole number")
    numbered = id_numbers.notna()
    repeated = numbered & id_numbers.where(numbered).duplicated(keep="first")
    flag(ID_COLUMN, repeated, "duplicate of an earlier row")

    for feature in FEATURES:
        column = frame[feature.name]
        _, problems = clean_column(feature, column)
        blank = column.str.strip() == ""
        if blank.any():
            summary.setdefault(feature.name, {})["blank (unknown)"] = int(blank.sum())
        flag(feature.name, problems.notna(), problems.fillna(""))

    label = frame[TARGET].str.strip()
    flag(TARGET, label == "", "blank")
    flag(TARGET, (label != "") & ~label.isin(["0", "1", "0.0", "1.0"]), "not 0 or 1")

    bad_rows = (reasons != "").to_numpy()
    clean = frame.loc[~bad_rows].reset_index(drop=True)
    clean[TARGET] = clean[TARGET].str.strip().str.slice(0, 1)
    quarantine = frame.loc[bad_rows].assign(**{REASON_COLUMN: reasons[bad_rows]})
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


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
    write_atomic(path, buffer.getvalue())


def run(raw_dir: Path, out_dir: Path, report_file: Path) -> dict[str, object]:
    """Validate train.csv and test.csv of raw_dir into out_dir; return the report."""
    report: dict[str, object] = {}
    for name in (TRAIN_FILE, TEST_FILE):
        result = validate_csv(raw_dir / name)
        check_trainable(result, str(raw_dir / name))
        stem = Path(name).stem
        write_csv(result.clean, out_dir / name)
        write_csv(result.quarantine, out_dir / f"quarantine_{stem}.csv")
        rows = len(result.clean) + len(result.quarantine)
        report[stem] = {
            "rows": rows,
            "usable": len(result.clean),
            "quarantined": len(result.quarantine),
            "positive_rate": round(float(np.mean(result.clean[TARGET] == "1")), 6),
            "by_column": result.summary,
        }
        say("validate", f"{name}: {len(result.clean):,} of {rows:,} rows usable, "
                        f"{len(result.quarantine):,} quarantined")  # fmt: skip
        for line in result.describe():
            say("validate", f"  {line}")
    write_atomic(report_file, json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    try:
        run(RAW_DIR, VALIDATED_DIR, REPORT_FILE)
    except DatasetError as error:
        sys.exit(f"validate: {error}")


if __name__ == "__main__":
    main()
