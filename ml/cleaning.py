"""Cleaning a raw column with the feature contract, in bulk: pandas, numpy and Arrow, no
scikit-learn.

Apart from ml/features.py (the pipeline's scikit-learn step, which uses it) so that the validate
stage, which only cleans and counts, does not import scikit-learn. The scoring command
(ml/score.py) cleans with the same functions.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.contract import ContractError, Feature, FeatureKind

# The usual spelling of an amount; bounded lengths keep every match a finite float.
PLAIN_AMOUNT: Final = r"^ *£?(\d{1,3}(,\d{3}){1,4}|\d{1,12})(\.\d{1,12})? *$"


def clean_column(feature: Feature, column: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Clean one raw column: (numbers with NaN for unknown, reason per row or None when valid)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Files are read as categories (ml.validate.read_raw_csv): clean each category once and
        # spread the results by code, without building a Python object per cell.
        if feature.kind is FeatureKind.MONEY and pd.api.types.is_string_dtype(
            column.cat.categories.dtype
        ):
            values, reasons = _clean_amounts(feature, column.cat.categories)
        else:
            values, reasons = _clean_values(feature, list(column.cat.categories))
        codes = column.cat.codes.to_numpy()
        numbers = np.append(np.array(values, dtype=np.float64), np.nan)[codes]
        labels = np.array([*reasons, None], dtype=object)[codes]
        return numbers, pd.Series(labels, index=column.index, dtype=object)
    distinct = list(pd.unique(column))
    values, reasons = _clean_values(feature, distinct)
    numbers = column.map(dict(zip(distinct, values, strict=True)))
    return (
        numbers.to_numpy(dtype=np.float64, na_value=np.nan),
        column.map(dict(zip(distinct, reasons, strict=True))),
    )


def _clean_values(feature: Feature, raw_values: list) -> tuple[list[float], list[str | None]]:
    values: list[float] = []
    reasons: list[str | None] = []
    for raw in raw_values:
        try:
            values.append(feature.clean_value(raw))
            reasons.append(None)
        except ContractError as error:
            values.append(math.nan)
            reasons.append(error.reason)
    return values, reasons


def _clean_amounts(feature: Feature, raw_values: pd.Index) -> tuple[list[float], list[str | None]]:
    """`_clean_values` for an amount column's distinct values: nearly every amount is distinct,
    so the plain spelling is parsed in bulk (`plain_amounts`) and only the rest, blanks and odd
    spellings, goes to the contract's `clean_value` one by one. Same numbers, same reasons."""
    numbers, slow = plain_amounts(feature, pa.array(raw_values.astype(object), type=pa.string()))
    values: list[float] = numbers.tolist()
    reasons: list[str | None] = [None] * len(values)
    left = np.flatnonzero(slow)
    left_values, left_reasons = _clean_values(feature, raw_values[left].tolist())
    for k, value, reason in zip(left.tolist(), left_values, left_reasons, strict=True):
        values[k], reasons[k] = value, reason
    return values, reasons


def plain_amounts(feature: Feature, column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The common spelling of amounts ("£1,623.85 ", "2630.0") parsed in bulk by Arrow.

    Every amount has its own text, so the per-distinct-value cleaning would call `clean_value`
    for nearly every row. Texts of the plain form (ASCII digits, optional "£", thousands commas,
    a decimal part, spaces around) in range are read here: removing "£", commas and spaces
    leaves a decimal that Arrow and Python both round correctly to the same float, which is what
    `clean_value` returns (a test compares them on dirty values). Returns (numbers, rows left for
    `clean_value`: any other spelling, blanks, out of range).
    """
    matches = pc.match_substring_regex(column, PLAIN_AMOUNT)
    every = pc.all(matches).as_py() is not False  # True on an empty column too
    plain = None if every else matches.to_numpy(zero_copy_only=False)
    # The plain form has "£" only in front and spaces only around: trimming both, then dropping
    # the commas, leaves the decimal.
    texts = column if plain is None else column.filter(matches)
    digits = pc.replace_substring(pc.utf8_trim(texts, "£ "), ",", "")
    parsed = pc.cast(digits, pa.float64()).to_numpy(zero_copy_only=False)
    if plain is None:
        numbers = parsed.copy()  # writable: out-of-range values are blanked below
        plain = np.ones(len(column), dtype=bool)
    else:
        numbers = np.full(len(column), np.nan)
        numbers[plain] = parsed
    low, high = feature.bounds
    in_range = plain & (numbers >= low) & (numbers <= high)
    numbers[~in_range] = np.nan
    return numbers, ~in_range
