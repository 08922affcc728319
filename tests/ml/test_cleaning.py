"""Bulk cleaning of raw columns (ml/cleaning.py): the same numbers and reasons as the contract's
per-value `clean_value`, however the column is held."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml.cleaning import clean_column
from ml.contract import FEATURES_BY_NAME, ContractError
from tests.conftest import REPO_ROOT

# Plain spellings (the bulk path), odd ones the contract still reads, and ones it refuses.
DIRTY_AMOUNTS = [
    "£1,623.85 ", "£131.50 ", "2630.0", "2630", "  £40,000 ", "£1,000,000.00", "£1,000,000.01",
    "1,2,3", "£ 1,623.85", "£1,623.85\t", "1e3", "-5", "+5", "", "   ", "£", "02630.50",
    "12,34.5", "£1,623,85", "1623.", ".5", "£0.00", "999999.999999", "1,000", "£9,999,999",
    "123456789012.5", "1,623.85£", "1.56", "nan", "£1,623.85 ",
]  # fmt: skip


def per_value(feature_name: str, raw: str) -> tuple[float, str | None]:
    try:
        return FEATURES_BY_NAME[feature_name].clean_value(raw), None
    except ContractError as error:
        return math.nan, error.reason


@pytest.mark.parametrize("dtype", ["category", object])
def test_amounts_cleaned_in_bulk_match_the_contract_value_by_value(dtype):
    # given dirty amounts, many distinct plain ones among them, as a column of either kind
    rng = np.random.default_rng(7)
    texts = DIRTY_AMOUNTS + [f"£{v:,.2f} " for v in rng.uniform(0, 2e6, 3_000)]
    column = pd.Series(texts, dtype=dtype)
    # when
    numbers, reasons = clean_column(FEATURES_BY_NAME["AnnualPremium"], column)
    # then every row has exactly what clean_value gives its text
    for text, number, reason in zip(texts, numbers, reasons.where(reasons.notna()), strict=True):
        reason = reason if isinstance(reason, str) else None  # NaN and None both mean valid
        expected_number, expected_reason = per_value("AnnualPremium", text)
        assert reason == expected_reason, f"{text!r}: reason {reason!r}, not {expected_reason!r}"
        same = number == expected_number or (math.isnan(number) and math.isnan(expected_number))
        assert same, f"{text!r}: {number!r}, the contract gives {expected_number!r}"
    assert reasons.notna().any(), "the table holds amounts the contract refuses"


def test_the_validate_stage_does_not_import_scikit_learn():
    # given a fresh interpreter; when it imports the validate stage; then scikit-learn is absent
    code = "import sys, ml.validate; print('sklearn' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert shown.stdout.strip() == "False", "ml.validate imports scikit-learn (a second on start)"
