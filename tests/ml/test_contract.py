"""The feature contract: every kind of dirt in the raw data, and clear errors for bad values."""

from __future__ import annotations

import math

import pytest

from ml.contract import (
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    ORIGINAL_API_FIELDS,
    ContractError,
    clean_row,
    describe,
)


@pytest.mark.parametrize(
    ("feature", "raw", "expected"),
    [
        ("AnnualPremium", "£1,623.85 ", 1623.85),
        ("AnnualPremium", "£131.50 ", 131.5),
        ("AnnualPremium", "£27,008.25", 27008.25),
        ("AnnualPremium", "2630", 2630.0),
        ("AnnualPremium", 2630.5, 2630.5),
        ("AnnualPremium", "£1,234,567.00", None),  # above the range
        ("Age", "69.0", 69.0),
        ("Age", " 44 ", 44.0),
        ("Age", 44, 44.0),
        ("HasDrivingLicense", "1.0", 1.0),
        ("RegionID", "28.0", 28.0),
        ("SalesChannelID", "152", 152.0),
        ("Gender", "Male", 1.0),
        ("Gender", " Female ", 0.0),
        ("VehicleAge", "> 2 Years", 2.0),
        ("VehicleAge", "< 1 Year", 0.0),
        ("PastAccident", "Yes", 1.0),
    ],
)
def test_clean_value_reads_the_raw_spellings(feature: str, raw: object, expected: float | None):
    # given a raw spelling found in the original system's files
    contract = FEATURES_BY_NAME[feature]
    if expected is None:
        # then out-of-range values are refused
        with pytest.raises(ContractError, match="out of range"):
            contract.clean_value(raw)
        return
    # when it is cleaned / then it becomes the model's number
    assert contract.clean_value(raw) == pytest.approx(expected)


@pytest.mark.parametrize("blank", ["", "   ", None, math.nan])
@pytest.mark.parametrize("feature", FEATURE_NAMES)
def test_blank_means_unknown(feature: str, blank: object):
    assert math.isnan(FEATURES_BY_NAME[feature].clean_value(blank)), f"{feature}: {blank!r}"


@pytest.mark.parametrize(
    ("feature", "raw", "message"),
    [
        ("Gender", "Robot", "Gender: unknown category; expected one of 'Female', 'Male'"),
        ("VehicleAge", "3 Years", "VehicleAge: unknown category"),
        ("PastAccident", "yes", "PastAccident: unknown category"),  # labels are case-sensitive
        ("Age", "69.5", "Age: not a whole number; expected a whole number from 18 to 100"),
        ("Age", "150", "Age: out of range"),
        ("Age", "17", "Age: out of range"),
        ("Age", "old", "Age: not a number"),
        ("Age", True, "Age: expected"),
        ("Switch", "2", "Switch: out of range; expected a whole number from 0 to 1"),
        ("RegionID", "53.0", "RegionID: out of range"),
        ("AnnualPremium", "£-5.00", "AnnualPremium: not a number"),
        ("AnnualPremium", "1,2", "AnnualPremium: not a number"),
        ("AnnualPremium", "nan", "AnnualPremium: not a number"),
        ("AnnualPremium", math.inf, "AnnualPremium: not a finite number"),
        ("AnnualPremium", "inf", "AnnualPremium: not a number"),
        ("AnnualPremium", [1], "AnnualPremium: expected an amount"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(feature: str, raw: object, message: str):
    with pytest.raises(ContractError) as caught:
        FEATURES_BY_NAME[feature].clean_value(raw)
    assert message in str(caught.value), str(caught.value)
    assert caught.value.feature == feature


def test_clean_row_orders_values_as_the_contract_and_treats_absent_as_unknown():
    # given a record in the original seven-field API shape
    from ml.run import SAMPLE_REQUEST

    # when
    values = clean_row(SAMPLE_REQUEST)
    # then
    by_name = dict(zip(FEATURE_NAMES, values, strict=True))
    assert by_name["Gender"] == 1.0 and by_name["AnnualPremium"] == 1623.85
    assert math.isnan(by_name["VehicleAge"]) and math.isnan(by_name["SalesChannelID"])


def test_original_api_fields_are_the_seven_of_the_original_service():
    expected = [
        "Gender",
        "Age",
        "HasDrivingLicense",
        "RegionID",
        "Switch",
        "PastAccident",
        "AnnualPremium",
    ]
    assert set(ORIGINAL_API_FIELDS) == set(expected)


def test_nominal_features_come_first():
    # HistGradientBoosting reads interaction constraints in its internal order, which puts
    # categorical columns first; the contract must already be in that order.
    nominal = [f.nominal for f in FEATURES]
    assert nominal == sorted(nominal, reverse=True), FEATURE_NAMES


def test_describe_lists_every_feature_with_its_rules():
    described = {d["name"]: d for d in describe()}
    assert list(described) == list(FEATURE_NAMES)
    assert described["VehicleAge"]["categories"] == ["< 1 Year", "1-2 Year", "> 2 Years"]
    assert (described["Age"]["minimum"], described["Age"]["maximum"]) == (18, 100)


def test_raw_layout_holds_every_feature_once_in_the_original_order():
    from ml.contract import ID_COLUMN, RAW_COLUMNS, TARGET

    assert RAW_COLUMNS[0] == ID_COLUMN and RAW_COLUMNS[-1] == TARGET
    assert sorted(RAW_COLUMNS[1:-1]) == sorted(FEATURE_NAMES)
    assert RAW_COLUMNS[1:4] == ("Gender", "Age", "HasDrivingLicense")


@pytest.mark.parametrize(
    "text", ["£1,623.85 ", "£131.50", "2305.40", " 2630 ", "", "  ", "1e3", "£ 1,000", "abc", "1,2"]
)
def test_money_text_pattern_accepts_exactly_what_clean_value_reads(text):
    import re

    from ml.contract import MONEY_TEXT_PATTERN

    premium = FEATURES_BY_NAME["AnnualPremium"]
    try:
        premium.clean_value(text)
        readable = True
    except ContractError:
        readable = False
    assert bool(re.match(MONEY_TEXT_PATTERN, text)) == readable, text
