"""Score raw files with the served model, without HTTP: `predict-buy score` and `load_model`.

The input is a raw CSV in the raw layout, dirt included (a local path, or s3://bucket/key, which is
downloaded to a temporary file first). It is cut into pieces of about 2 MiB at rows' ends (a line
end inside a quoted value is not one), and each piece is parsed by pyarrow's CSV reader on a worker
thread, so memory stays flat whatever the file's size. Each block is cleaned with the feature
contract's own `clean_value` (through `ml.cleaning.clean_column`, once per distinct value of a
column, as the validate stage does), scored with the compiled model whose sha256 was verified
against model.json, and appended to the output: the row's id, predicted_class, probability,
threshold and model_version, plus, with `explain`, the base value and one exact contribution per
feature group.

Rows that break the contract (a value outside it, a blank or non-numeric id, a line with the wrong
number of fields) go to a rejects file with their reason. Both files are written under temporary
names beside their destination and renamed only once the whole input was scored, so a failure
leaves neither half-written. Python API::

    from ml.score import load_model
    predictions = load_model("models").predict_frame(frame, explain=True)
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ml.artefact import ArtefactError, ModelMetadata, load_serving_model
from ml.cleaning import clean_column, plain_amounts
from ml.compiled import CompiledModel
from ml.contract import FEATURES, ID_COLUMN, RAW_COLUMNS, ContractError, Feature, FeatureKind
from ml.csv_text import quoted, quotes_doubled, write_lines
from ml.progress import say

DEFAULT_MODEL_DIR: Final = Path("models")
BLOCK_BYTES: Final = 2 << 20  # bytes of CSV per block: ~30k rows; smaller keeps memory flatter
PROGRESS_EVERY_S: Final = 2.0
WORKERS: Final = min(4, os.cpu_count() or 1)
QUEUED: Final = 1  # pieces waiting for a worker, so that none idles
MEMO_LIMIT: Final = 100_000  # distinct raw values remembered per feature
REASON_COLUMN: Final = "reason"
BASE_VALUE_COLUMN: Final = "base_value"
CONTRIBUTION_PREFIX: Final = "contribution:"
INPUT_COLUMNS: Final = (ID_COLUMN, *(f.name for f in FEATURES))
# Read dictionary-encoded: every feature but amounts, which are nearly all distinct.
_DICTIONARY_COLUMNS: Final = tuple(f.name for f in FEATURES if f.kind is not FeatureKind.MONEY)
_WHOLE_NUMBER: Final = r"^[+-]?\d+(\.0*)?$"
_QUOTE: Final = ord('"')
LONGEST_ROW_PIECES: Final = 8  # a row longer than this many pieces is taken for a miscount


class ScoreError(ValueError):
    """The input, the model or the output cannot be used; the message names which and why."""


@dataclass(frozen=True)
class CleanBlock:
    """One block of input rows: the cleaned matrix (or, when the cleaner was given the model,
    the model's bin numbers of it instead), which rows are usable, and the problems of the
    others (row index in the block -> reasons)."""

    ids: pa.Array
    raw: pa.RecordBatch
    matrix: np.ndarray | None
    usable: np.ndarray
    problems: dict[int, list[str]]
    bins: np.ndarray | None = None

    def reasons_of_refused(self) -> list[str]:
        """The reason of each refused row, in row order, e.g. "Age: out of range; ..."."""
        return ["; ".join(self.problems[row]) for row in np.flatnonzero(~self.usable).tolist()]


def _clean_codes(
    feature: Feature, uniques: pd.Series, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, reasons) of a column given its distinct values and each row's code into them.

    `clean_column` (the contract's `clean_value` once per distinct value) runs on the distinct
    values only; the rows then index the result. Code -1 is a missing cell: unknown.
    """
    numbers, reasons = clean_column(feature, uniques)
    numbers = np.append(numbers, np.nan)  # code -1 lands on the appended NaN
    reasons_array = np.append(reasons.fillna("").to_numpy(dtype=object), "")
    return numbers[codes], reasons_array[codes]


class _Memo:
    """The contract's cleaning of each distinct raw value of one feature, kept across blocks.

    Bounded, so memory stays flat on any file: past MEMO_LIMIT values new ones are cleaned each
    time they occur (only odd spellings of amounts ever get that far).
    """

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self.known: dict[str, tuple[float, str]] = {}

    def clean(self, uniques: list[str]) -> tuple[np.ndarray, list[str]]:
        """Number and reason ("" if valid) of each distinct value, plus a NaN after them: the
        number of a missing cell."""
        new = [u for u in uniques if u not in self.known]
        fresh: dict[str, tuple[float, str]] = {}
        if new:
            numbers, reasons = clean_column(self.feature, pd.Series(new, dtype=object))
            pairs = zip(numbers.tolist(), reasons.fillna("").tolist(), strict=True)
            fresh = dict(zip(new, pairs, strict=True))
            if len(self.known) + len(fresh) <= MEMO_LIMIT:
                self.known.update(fresh)
        cleaned = [self.known.get(u) or fresh[u] for u in uniques]
        numbers = np.array([c[0] for c in cleaned] + [np.nan], dtype=np.float64)
        return numbers, [c[1] for c in cleaned]


class BlockCleaner:
    """Cleans blocks of raw text columns (id and every feature) with the feature contract."""

    def __init__(self, model: CompiledModel | None = None) -> None:
        self._memos = [_Memo(feature) for feature in FEATURES]
        # With the model, each distinct value is binned once (as predict_proba would bin it)
        # and the blocks hold bin numbers instead of values, so scoring needs no search per row.
        self._model = model

    def clean(self, batch: pa.RecordBatch) -> CleanBlock:
        rows = batch.num_rows
        # Column-major: the model bins one feature (column) at a time, twice as fast contiguous.
        shape = (rows, len(FEATURES))
        usable = np.ones(rows, dtype=bool)
        problems: dict[int, list[str]] = {}
        model = self._model
        bins = None if model is None else np.empty(shape, dtype=np.int64, order="F")
        # With the model the block holds bins only: a column's numbers, where needed on their
        # way to their bins (amounts), pass through one scratch column.
        matrix = np.empty(shape, dtype=np.float64, order="F") if model is None else None
        scratch = np.empty(rows, dtype=np.float64)

        def refuse(bad_rows: np.ndarray, reasons: list[str]) -> None:
            for row, reason in zip(bad_rows.tolist(), reasons, strict=True):
                problems.setdefault(row, []).append(reason)
            usable[bad_rows] = False

        ids = batch.column(ID_COLUMN)
        digits = pc.utf8_is_digit(ids)  # digits only: nothing to trim (the usual case)
        if not pc.all(digits).as_py():
            ids = pc.utf8_trim_whitespace(ids)
            digits = pc.utf8_is_digit(ids)
        if not pc.all(digits).as_py():  # "12.0" is a whole number too; the regex only runs here
            bad_id = ~digits.to_numpy(zero_copy_only=False)
            blank_id = pc.equal(ids, "").to_numpy(zero_copy_only=False)
            whole = pc.match_substring_regex(ids.filter(pa.array(bad_id)), _WHOLE_NUMBER)
            bad_id[bad_id] = ~whole.to_numpy(zero_copy_only=False)
            blank_rows, other_rows = np.flatnonzero(blank_id), np.flatnonzero(bad_id & ~blank_id)
            refuse(blank_rows, [f"{ID_COLUMN}: blank"] * len(blank_rows))
            refuse(other_rows, [f"{ID_COLUMN}: not a whole number"] * len(other_rows))
        for j, (feature, memo) in enumerate(zip(FEATURES, self._memos, strict=True)):
            column = batch.column(feature.name)
            values = scratch if matrix is None else matrix[:, j]  # this feature's numbers
            rest = None  # rows the bulk amount parser left for the contract's clean_value
            if feature.kind is FeatureKind.MONEY:
                values[:], slow = plain_amounts(feature, column)
                if not slow.any():
                    if bins is not None and model is not None:
                        bins[:, j] = model.bin_column(j, values)
                    continue
                rest = np.flatnonzero(slow)
                column = column.filter(pa.array(slow))
            dictionary = pa.types.is_dictionary(column.type)
            encoded = column if dictionary else pc.dictionary_encode(column)
            numbers, reasons = memo.clean(encoded.dictionary.to_pylist())
            # A missing cell (null) is unknown: the NaN that memo.clean appends after the values.
            indices = encoded.indices
            if indices.null_count:
                indices = indices.fill_null(len(encoded.dictionary))
            codes = indices.to_numpy(zero_copy_only=False)
            # np.take with mode="clip" skips the bounds check (every code is in range): half the
            # time of numbers[codes].
            if rest is None and bins is not None and model is not None:
                np.take(model.bin_column(j, numbers), codes, out=bins[:, j], mode="clip")
            elif rest is None:
                np.take(numbers, codes, out=values, mode="clip")
            else:
                values[rest] = numbers[codes]
                if bins is not None and model is not None:
                    bins[:, j] = model.bin_column(j, values)
            bad_codes = [k for k, reason in enumerate(reasons) if reason]
            if bad_codes:
                bad = np.flatnonzero(np.isin(codes, bad_codes))
                rows_bad = bad if rest is None else rest[bad]
                refuse(rows_bad, [f"{feature.name}: {reasons[c]}" for c in codes[bad].tolist()])
        return CleanBlock(ids, batch, matrix, usable, problems, bins)


# -- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """A raw CSV's header, checked: its column names and where the data lines start."""

    path: Path
    names: list[str]
    data_start: int  # byte offset just after the header line


def _layout(path: Path) -> _Layout:
    """The header's column names, stripped; ScoreError if the file is not the raw layout."""
    if not path.is_file():
        raise ScoreError(f"{path}: file not found")
    with path.open("rb") as handle:
        first = handle.readline(1 << 20)
        while first and not first.strip():
            first = handle.readline(1 << 20)
        data_start = handle.tell()
    if not first.strip():
        raise ScoreError(f"{path}: file is empty (expected a header line and rows)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ScoreError(f"{path}: not UTF-8 text in the header; save the file as UTF-8") from error
    if "," not in text:
        used = next((d for d in (";", "\t", "|") if d in text), None)
        found = f"found {used!r}" if used else "found no delimiter"
        raise ScoreError(f"{path}: wrong delimiter in the header ({found}); expected ','")
    names = [name.strip() for name in next(csv.reader([text]))]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScoreError(f"{path}: columns repeated in the header: {repeated}")
    missing = [c for c in RAW_COLUMNS if c in INPUT_COLUMNS and c not in names]
    if missing:
        raise ScoreError(
            f"{path}: missing columns {missing}; the raw layout is {RAW_COLUMNS} "
            f"({RAW_COLUMNS[-1]} is not needed to score)"
        )
    return _Layout(path, names, data_start)


@dataclass
class _BadLines:
    """Lines with the wrong number of fields, kept as rejects instead of failing the read."""

    # (reason, the line's start). Arrow's row numbers count rows of one piece, not file lines.
    lines: list[tuple[str, str]] = field(default_factory=list)

    def handler(self, row: Any) -> str:
        reason = f"malformed line: expected {row.expected_columns} fields, got {row.actual_columns}"
        self.lines.append((reason, str(row.text)[:200]))
        return "skip"


def _chunks(layout: _Layout) -> Iterator[bytes | memoryview]:
    """The data lines after the header, in pieces of about BLOCK_BYTES that end at a line end.

    Pieces end at the last line end they hold outside a quoted value: a piece starts outside
    quotes, so a line end is a row's end when the quotes before it are even in number (a quoted
    amount may hold a line end, and doubled quotes count twice). A row longer than a piece makes
    that piece longer, up to LONGEST_ROW_PIECES pieces: past that, the count is taken to be off (a
    quote inside an unquoted cell, which the parser reads as text) and the piece ends at its last
    line end. Reading is only this; parsing a piece (`_parse_chunk`) can then run in any thread,
    so that several pieces are parsed at once. Memory: one piece.
    """
    with layout.path.open("rb", buffering=0) as handle:  # unbuffered: one copy, the read
        position = layout.data_start
        size = BLOCK_BYTES
        while True:
            handle.seek(position)
            piece = handle.read(size)
            while piece and len(piece) < size:  # a short read before the end of the file
                more = handle.read(size - len(piece))
                if not more:
                    break
                piece += more
            if len(piece) < size:  # the end of the file
                if piece:
                    yield piece
                return
            last = end = piece.rfind(b"\n") + 1
            # numpy counts without holding the GIL, which the workers need meanwhile.
            quotes = int(np.count_nonzero(np.frombuffer(piece, np.uint8, end) == _QUOTE))
            while end and quotes % 2:  # that line end is inside a quoted value: the one before
                before = piece.rfind(b"\n", 0, end - 1) + 1
                quotes -= piece.count(b'"', before, end)
                end = before
            if end == 0 and size >= LONGEST_ROW_PIECES * BLOCK_BYTES:
                # Still no even count before a line end: a quote inside an unquoted cell
                # (5'10"), which the parser reads as text, threw the count off. Cut at the last
                # line end, so that the piece does not grow with the rest of the file.
                end = last
            if end == 0:  # no row's end yet (a row longer than the piece): read a longer one
                size *= 2
                continue
            yield memoryview(piece)[:end]
            position += end
            size = BLOCK_BYTES


def _parse_chunk(
    layout: _Layout, chunk: bytes | memoryview, bad_lines: _BadLines | None = None
) -> list[pa.RecordBatch]:
    """The text columns (id and the features) of one piece of data lines; ScoreError if it is
    not CSV text. Lines with the wrong number of fields go to `bad_lines`."""
    # The features with few distinct values come dictionary-encoded from the reader (the
    # cleaner works on distinct values anyway); as bytes, so that only the distinct values are
    # checked for UTF-8 (by _as_text), not every cell.
    column_types = dict.fromkeys(layout.names, pa.string())
    column_types.update(dict.fromkeys(_DICTIONARY_COLUMNS, pa.dictionary(pa.int32(), pa.binary())))
    options = pacsv.ConvertOptions(
        column_types=column_types,
        include_columns=list(INPUT_COLUMNS),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    # One block for the whole piece, and no threads of Arrow's own: the caller runs pieces in
    # parallel.
    read = pacsv.ReadOptions(
        column_names=layout.names, block_size=len(chunk) + 1, use_threads=False
    )
    # One block per piece, which the parser reads with quotes in mind (a quoted amount may hold
    # a line end); `_chunks` ends pieces at rows' ends.
    parse = pacsv.ParseOptions(invalid_row_handler=bad_lines.handler if bad_lines else None)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(chunk), read_options=read, parse_options=parse, convert_options=options
        )
        return [_as_text(batch) for batch in table.to_batches() if batch.num_rows]
    except pa.ArrowInvalid as error:
        detail = str(error)
        if "UTF8" in detail or "utf8" in detail.lower():
            detail = "not UTF-8 text; save the file as UTF-8"
        raise ScoreError(f"{layout.path}: not a readable CSV ({detail})") from error


def read_blocks(path: Path, bad_lines: _BadLines | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a local raw CSV as blocks of text columns (id and the features; the features
    with few distinct values dictionary-encoded)."""
    layout = _layout(path)
    for chunk in _chunks(layout):
        yield from _parse_chunk(layout, chunk, bad_lines)


def _as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its dictionary columns' values turned into text (ArrowInvalid unless
    UTF-8)."""
    columns = []
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            text = column.dictionary.cast(pa.string())
            column = pa.DictionaryArray.from_arrays(column.indices, text, safe=False)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


@contextmanager
def local_input(source: str, endpoint_url: str | None = None) -> Iterator[Path]:
    """A local path for `source`: itself, or an s3:// object downloaded (md5 checked) to a
    temporary file that is removed afterwards."""
    if not source.startswith("s3://"):
        yield Path(source)
        return
    from ml.s3 import S3DataError, download_file, make_client, parse_s3_url

    try:
        location = parse_s3_url(source)
        key = location.prefix.rstrip("/")
        if not key:
            raise S3DataError(f"{source!r}: names a bucket, not a file; expected s3://bucket/key")
        with tempfile.TemporaryDirectory(prefix="predict-buy-score-") as scratch:
            local = Path(scratch) / Path(key).name
            download_file(make_client(endpoint_url), location.bucket, key, local)
            yield local
    except S3DataError as error:
        raise ScoreError(str(error)) from error


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoringModel:
    """The served model (verified), its threshold and version, for scoring frames and files."""

    model: CompiledModel
    metadata: ModelMetadata

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def contribution_columns(self) -> list[str]:
        return [CONTRIBUTION_PREFIX + name for name in self.model.group_names]

    def predict_matrix(self, matrix: np.ndarray, explain: bool = False) -> dict[str, Any]:
        """Columns of predictions for cleaned rows (contract order, NaN unknown)."""
        return self.predict_bins(self.model.bin_matrix(matrix), explain)

    def predict_bins(self, bins: np.ndarray, explain: bool = False) -> dict[str, Any]:
        """Columns of predictions for rows given by the model's bin numbers (bin_matrix)."""
        probability = self.model.predict_proba_binned(bins)
        rows = len(bins)
        columns: dict[str, Any] = {
            "predicted_class": (probability >= self.threshold).astype(np.int8),
            "probability": probability,
            "threshold": pa.repeat(pa.scalar(self.threshold), rows),
            "model_version": pa.repeat(pa.scalar(self.version), rows),
        }
        if explain:
            columns[BASE_VALUE_COLUMN] = np.full(rows, self.model.intercept)
            terms = self.model.contributions_binned(bins)
            for k, name in enumerate(self.contribution_columns):
                columns[name] = terms[:, k]
        return columns

    def predict_frame(self, frame: pd.DataFrame, explain: bool = False) -> pd.DataFrame:
        """Predictions for raw rows (text as in the CSV, or numbers), one per row, same index.

        Columns: predicted_class, probability, threshold, model_version; with `explain`, also
        base_value and one `contribution:<group>` column per feature group, whose sum with the
        base value is the logit of the probability. A missing feature column means unknown for
        every row; a value that breaks the contract raises ContractError naming the row.
        """
        matrix = np.empty((len(frame), len(FEATURES)), dtype=np.float64)
        for j, feature in enumerate(FEATURES):
            if feature.name not in frame.columns:
                matrix[:, j] = np.nan
                continue
            codes, uniques = pd.factorize(frame[feature.name], use_na_sentinel=True)
            matrix[:, j], why = _clean_codes(feature, pd.Series(uniques, dtype=object), codes)
            bad = np.flatnonzero(why != "")
            if len(bad):
                row = bad[0]
                raise ContractError(
                    feature.name,
                    frame[feature.name].iloc[row],
                    f"{why[row]} (row {frame.index[row]!r})",
                )
        columns = self.predict_matrix(matrix, explain)
        columns["threshold"] = np.full(len(frame), self.threshold)
        columns["model_version"] = np.full(len(frame), self.version, dtype=object)
        return pd.DataFrame(columns, index=frame.index)


def load_model(model_dir: Path | str = DEFAULT_MODEL_DIR) -> ScoringModel:
    """The model in `model_dir`, its sha256 verified against model.json; ScoreError if unusable."""
    try:
        compiled, metadata = load_serving_model(Path(model_dir))
    except ArtefactError as error:
        raise ScoreError(str(error)) from error
    return ScoringModel(compiled, metadata)


# -- writing ---------------------------------------------------------------------------------------
class _TableSink:
    """Writes Arrow tables to a temporary file beside `path`: CSV, or Parquet for *.parquet.

    `prepare` does what can be done before the file's turn (casting, formatting) and may run in
    any thread; `write` takes its result, in file order.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        self.path, self.temporary, self.schema = path, Path(name), schema
        self.rows = 0
        self._open = True
        self._writer: Any = self._open_writer()

    def _open_writer(self) -> Any:
        if self.path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self.temporary, self.schema)
        options = pacsv.WriteOptions(quoting_style="needed")
        return pacsv.CSVWriter(self.temporary, self.schema, write_options=options)

    def prepare(self, table: pa.Table) -> Any:
        return table.cast(self.schema)

    def write(self, prepared: Any) -> None:
        self._writer.write_table(prepared)
        self.rows += len(prepared)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._writer.close()

    def commit(self) -> None:
        os.chmod(self.temporary, 0o644)  # mkstemp makes 0600; the output is for its reader
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Remove the temporary file (a no-op once committed)."""
        try:
            self.close()
        finally:
            self.temporary.unlink(missing_ok=True)


class _CsvLinesSink(_TableSink):
    """The scores as CSV, byte for byte as pyarrow's CSV writer (quoting_style="needed") writes
    them, but each line is assembled by one Arrow kernel and columns whose value is the same on
    every row (`constants`: threshold, model_version, base_value) are formatted once.

    Formatting a float per row is most of a CSV writer's work: the threshold alone cost as much
    as the probability.
    """

    def __init__(self, path: Path, schema: pa.Schema, constants: dict[str, float | str]) -> None:
        self._texts = {
            name: _csv_cells(pa.array([value], schema.field(name).type))[0].as_py()
            for name, value in constants.items()
        }
        super().__init__(path, schema)

    def _open_writer(self) -> Any:
        handle = self.temporary.open("wb")
        header = _csv_cells(pa.array(self.schema.names, pa.string())).to_pylist()
        handle.write((",".join(header) + "\n").encode())
        return handle

    def prepare(self, table: pa.Table) -> pa.StringArray:
        """The lines of `table` (without the constant columns), each ending in a newline."""
        pieces: list[Any] = []  # texts and columns of text, joined row by row

        def text(constant: str) -> None:  # neighbouring texts as one: fewer kernel arguments
            if pieces and isinstance(pieces[-1], str):
                pieces[-1] += constant
            else:
                pieces.append(constant)

        for position, field_ in enumerate(self.schema):
            if position:
                text(",")
            if field_.name in self._texts:
                text(self._texts[field_.name])
                continue
            column = table.column(field_.name).combine_chunks().cast(field_.type)
            if column.null_count:
                pieces.append(_csv_cells(column))
            elif pa.types.is_string(field_.type):  # quoted, the quotes joined to their neighbours
                column = quotes_doubled(column)
                text('"')
                pieces.append(column)
                text('"')
            elif pa.types.is_int8(field_.type):  # looked up below, not formatted
                pieces.append(pa.array(column.to_numpy().view(np.uint8)))
            else:
                pieces.append(pc.cast(column, pa.string()))
        text("\n")
        # An int8 column's cells are looked up among the 256 texts an int8 can have, with the
        # texts on either side of it in the line: one column fewer for the join to copy.
        for k, piece in enumerate(pieces):
            if isinstance(piece, pa.UInt8Array):
                before = pieces[k - 1] if k and isinstance(pieces[k - 1], str) else ""
                after = (
                    pieces[k + 1] if k + 1 < len(pieces) and isinstance(pieces[k + 1], str) else ""
                )
                texts = pa.array([before + cell + after for cell in _INT8_TEXTS])
                pieces[k] = texts.take(piece)
                if before:
                    pieces[k - 1] = ""
                if after:
                    pieces[k + 1] = ""
        return pc.binary_join_element_wise(*[p for p in pieces if not isinstance(p, str) or p], "")

    def write(self, prepared: Any) -> None:
        write_lines(self._writer, prepared)
        self.rows += len(prepared)


# The text of every int8, at the position of its bits read as uint8.
_INT8_TEXTS: Final = [str(v) for v in np.arange(256, dtype=np.uint8).view(np.int8).tolist()]


def _csv_cells(column: pa.Array) -> pa.StringArray:
    """The cells of one column as pyarrow's CSV writer (quoting_style="needed") writes them:
    text quoted, its quotes doubled; numbers as Arrow formats them; a null, an empty cell."""
    text = quoted(column) if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    return text.fill_null("") if text.null_count else text


def rejects_path_for(output: Path) -> Path:
    """Default rejects file: `scores.csv` -> `scores.rejects.csv` (always CSV)."""
    return output.with_name(f"{output.stem}.rejects.csv")


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    scored: int
    rejected: int
    seconds: float
    output: Path
    rejects: Path

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score_file(
    source: str,
    output: Path,
    model: ScoringModel,
    *,
    rejects: Path | None = None,
    explain: bool = False,
    endpoint_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScoreSummary:
    """Score a raw CSV (path or s3:// URL) into `output`, rejects into `rejects`, atomically."""
    rejects = rejects or rejects_path_for(output)
    if output.resolve() == rejects.resolve():
        raise ScoreError(f"{output}: the output and the rejects file must differ")
    fields = [
        pa.field(ID_COLUMN, pa.string()),
        pa.field("predicted_class", pa.int8()),
        pa.field("probability", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("model_version", pa.string()),
    ]
    if explain:
        names = [BASE_VALUE_COLUMN, *model.contribution_columns]
        fields += [pa.field(name, pa.float64()) for name in names]
    reject_schema = pa.schema(
        [pa.field(name, pa.string()) for name in (*INPUT_COLUMNS, REASON_COLUMN)]
    )
    started = time.perf_counter()
    last_report = started
    rows = 0
    with ExitStack() as stack:
        path = stack.enter_context(local_input(source, endpoint_url))
        layout = _layout(path)
        if output.suffix == ".parquet":
            out = _TableSink(output, pa.schema(fields))
        else:
            constants: dict[str, float | str] = {
                "threshold": model.threshold,
                "model_version": model.version,
            }
            if explain:
                constants[BASE_VALUE_COLUMN] = model.model.intercept
            out = _CsvLinesSink(output, pa.schema(fields), constants)
        stack.callback(out.discard)
        bad = _TableSink(rejects, reject_schema)
        stack.callback(bad.discard)
        cleaner = BlockCleaner(model.model)
        bad_lines: list[tuple[str, str]] = []

        def score_batch(batch: pa.RecordBatch) -> tuple[Any, Any]:
            block = cleaner.clean(batch)
            usable = block.usable
            assert block.bins is not None  # noqa: S101 -- the cleaner was given the model
            every = bool(usable.all())
            bins = block.bins if every else np.asfortranarray(block.bins[usable])
            columns = model.predict_bins(bins, explain)
            ids = block.ids if every else block.ids.filter(pa.array(usable))
            scored = out.prepare(pa.table({ID_COLUMN: ids, **columns}))
            refused = None
            if not every:
                reasons = pa.array(block.reasons_of_refused(), pa.string())
                refused = pa.Table.from_batches([block.raw.filter(pa.array(~usable))])
                refused = bad.prepare(refused.append_column(REASON_COLUMN, reasons))
            return scored, refused

        def score_chunk(chunk: bytes | memoryview) -> tuple[int, list[tuple[Any, Any]], _BadLines]:
            malformed = _BadLines()  # one per piece: pieces are parsed in any order
            batches = _parse_chunk(layout, chunk, malformed)
            parsed = sum(batch.num_rows for batch in batches)
            return parsed, [score_batch(batch) for batch in batches], malformed

        def write_block(outputs: list[tuple[Any, Any]]) -> None:
            for scored, refused in outputs:
                out.write(scored)
                if refused is not None:
                    bad.write(refused)

        # Pieces of the file are parsed and scored by WORKERS threads and written by one more,
        # in input order (Arrow and numpy release the GIL, so reading, scoring and writing
        # overlap). At most WORKERS + QUEUED + 3 pieces are in flight, so memory stays flat.
        with (
            ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="score") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as writer,
        ):
            pending: deque[Future[tuple[int, list[tuple[Any, Any]], _BadLines]]] = deque()
            written: deque[Future[None]] = deque()
            for chunk in itertools.chain(_chunks(layout), [None]):
                if chunk is not None:
                    pending.append(pool.submit(score_chunk, chunk))
                while pending and (chunk is None or len(pending) > WORKERS + QUEUED):
                    block_rows, outputs, malformed = pending.popleft().result()
                    rows += block_rows
                    bad_lines += malformed.lines
                    written.append(writer.submit(write_block, outputs))
                    while len(written) > 1:
                        written.popleft().result()
                now = time.perf_counter()
                if progress and now - last_report >= PROGRESS_EVERY_S:
                    progress(f"{rows:,} rows, {rows / (now - started):,.0f} rows/s")
                    last_report = now
            while written:
                written.popleft().result()
        for reason, text in bad_lines:
            cells = {name: [""] for name in INPUT_COLUMNS}
            line = pa.table({**cells, REASON_COLUMN: [f"{reason}: {text!r}"]})
            bad.write(bad.prepare(line))
        rows += len(bad_lines)
        if rows == 0:
            raise ScoreError(f"{source}: has a header but no data rows")
        out.close()
        bad.close()
        bad.commit()
        out.commit()
    seconds = time.perf_counter() - started
    return ScoreSummary(rows, out.rows, bad.rows, seconds, output, rejects)


def scores_to_frame(path: Path) -> pd.DataFrame:
    """Read a file `score_file` wrote (CSV or Parquet), ids as text."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(io.StringIO(path.read_text()), dtype={ID_COLUMN: str})


def report(summary: ScoreSummary) -> None:
    """The closing progress line of a scoring run."""
    say(
        "score",
        f"{summary.scored:,} of {summary.rows:,} rows scored into {summary.output}, "
        f"{summary.rejected:,} rejected into {summary.rejects}; {summary.seconds:.1f} s, "
        f"{summary.rows_per_s:,.0f} rows/s",
    )
