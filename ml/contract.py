"""The feature contract: names, types, allowed values, ranges and what a blank means, defined once.

Data validation, the model pipeline's cleaning step, the compiled serving model and the service's
request model all read this module; nothing else lists the features. Cleaning is written per value
(`clean_value`) so that training (applied to each distinct value of a column) and serving
(applied to each request field) run the very same code.

A blank cell, or a null/absent optional field in a request, means "unknown": the model handles
missing values natively, so unknown is a value, not an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class FeatureKind(StrEnum):
    """How a raw value is written and how it is turned into a number."""

    CATEGORY = "category"  # one of a fixed list of labels; the number is the label's position
    INTEGER = "integer"  # a whole number, possibly written "69.0"
    MONEY = "money"  # an amount, possibly written "£1,623.85 "


class ContractError(ValueError):
    """A raw value breaks the feature contract; the message names the field and what is allowed."""

    def __init__(self, feature: str, value: object, reason: str) -> None:
        self.feature = feature
        self.value = value
        self.reason = reason
        super().__init__(f"{feature}: {reason} (got {value!r})")


@dataclass(frozen=True)
class Feature:
    """One model input: how it is written in the raw data and which values are allowed."""

    name: str
    kind: FeatureKind
    description: str
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # Part of the original API's seven-field payload: required in requests (null means unknown).
    in_original_api: bool = False
    # Identifiers whose numbers carry no order: the model treats them as categories.
    nominal: bool = False
    # Values below this are allowed by the range but not believable in a data file (a premium of
    # 1.56 is "1.562" misread, not a price): validation quarantines them, naming the reason.
    plausible_minimum: float | None = None
    example: object = None
    _codes: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codes", {c: i for i, c in enumerate(self.categories)})

    @property
    def bounds(self) -> tuple[float, float]:
        """The inclusive range of a numeric feature."""
        if self.minimum is None or self.maximum is None:
            raise TypeError(f"{self.name} is a {self.kind.value} feature and has no range")
        return self.minimum, self.maximum

    @property
    def allowed(self) -> str:
        """What is allowed, in words, for error messages and docs."""
        if self.kind is FeatureKind.CATEGORY:
            return "one of " + ", ".join(repr(c) for c in self.categories) + ", or blank"
        unit = "a whole number" if self.kind is FeatureKind.INTEGER else "an amount"
        low, high = self.bounds
        return f"{unit} from {low:,g} to {high:,.0f}, or blank"

    def domain(self) -> list[float]:
        """Every number a discrete feature can take (categories, bounded integers); [] for money."""
        if self.kind is FeatureKind.CATEGORY:
            return [float(i) for i in range(len(self.categories))]
        if self.kind is FeatureKind.INTEGER:
            low, high = self.bounds
            return [float(v) for v in range(int(low), int(high) + 1)]
        return []

    def clean_value(self, raw: object) -> float:
        """Turn one raw value (CSV text, JSON number or string, None) into the model's number.

        Blank, None and NaN give NaN (unknown). Anything else that is not allowed raises
        ContractError naming the feature, the value and what is allowed.
        """
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return math.nan
        if isinstance(raw, bool):
            raise ContractError(self.name, raw, f"expected {self.allowed}")
        if isinstance(raw, str):
            text = raw.strip()
            if not text:
                return math.nan
        else:
            text = None
        if self.kind is FeatureKind.CATEGORY:
            code = self._codes.get(text) if text is not None else None
            if code is None:
                raise ContractError(self.name, raw, f"unknown category; expected {self.allowed}")
            return float(code)
        number = _parse_number(self, raw, text)
        if self.kind is FeatureKind.INTEGER and not number.is_integer():
            raise ContractError(self.name, raw, f"not a whole number; expected {self.allowed}")
        low, high = self.bounds
        if not low <= number <= high:
            raise ContractError(self.name, raw, f"out of range; expected {self.allowed}")
        return number


_MONEY: Final = r"£?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"
_NUMBER: Final = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
_MONEY_TEXT: Final = re.compile(f"^{_MONEY}$")
_NUMBER_TEXT: Final = re.compile(f"^{_NUMBER}$")
# Any text a money feature accepts (blank: unknown), for schemas such as the service's OpenAPI.
MONEY_TEXT_PATTERN: Final = rf"^\s*({_MONEY}|{_NUMBER})?\s*$"


def _parse_number(feature: Feature, raw: object, text: str | None) -> float:
    if text is None:
        if not isinstance(raw, int | float):
            raise ContractError(feature.name, raw, f"expected {feature.allowed}")
        number = float(raw)
    elif feature.kind is FeatureKind.MONEY and (match := _MONEY_TEXT.match(text)):
        number = float(match.group(1).replace(",", "") + (match.group(2) or ""))
    elif _NUMBER_TEXT.match(text):
        number = float(text)
    else:
        raise ContractError(feature.name, raw, f"not a number; expected {feature.allowed}")
    if not math.isfinite(number):
        raise ContractError(feature.name, raw, f"not a finite number; expected {feature.allowed}")
    return number


# Nominal features come first: HistGradientBoosting moves categorical columns to the front
# internally and reads interaction constraints in that internal order, so keeping them first
# makes both orders the same (ml/compile.py checks it).
FEATURES: Final[tuple[Feature, ...]] = (
    Feature(
        "RegionID",
        FeatureKind.INTEGER,
        "Code of the customer's region.",
        minimum=0,
        maximum=52,
        in_original_api=True,
        nominal=True,
        example=28,
    ),
    Feature(
        "SalesChannelID",
        FeatureKind.INTEGER,
        "Code of the channel through which the customer was reached.",
        minimum=1,
        maximum=163,
        nominal=True,
        example=26,
    ),
    Feature(
        "Gender",
        FeatureKind.CATEGORY,
        "Customer's gender.",
        categories=("Female", "Male"),
        in_original_api=True,
        example="Male",
    ),
    Feature(
        "Age",
        FeatureKind.INTEGER,
        "Customer's age in years.",
        minimum=18,
        maximum=100,
        in_original_api=True,
        example=44,
    ),
    Feature(
        "HasDrivingLicense",
        FeatureKind.INTEGER,
        "1 if the customer holds a driving licence, else 0.",
        minimum=0,
        maximum=1,
        in_original_api=True,
        example=1,
    ),
    Feature(
        "Switch",
        FeatureKind.INTEGER,
        "1 if the customer already has vehicle insurance (with anyone), else 0.",
        minimum=0,
        maximum=1,
        in_original_api=True,
        example=0,
    ),
    Feature(
        "VehicleAge",
        FeatureKind.CATEGORY,
        "Age of the customer's vehicle.",
        categories=("< 1 Year", "1-2 Year", "> 2 Years"),
        example="> 2 Years",
    ),
    Feature(
        "PastAccident",
        FeatureKind.CATEGORY,
        "Whether the customer's vehicle was damaged in the past.",
        categories=("No", "Yes"),
        in_original_api=True,
        example="Yes",
    ),
    Feature(
        "AnnualPremium",
        FeatureKind.MONEY,
        'Annual premium in pounds: a number, or text such as "£1,623.85 ".',
        minimum=0.0,
        maximum=1_000_000.0,
        in_original_api=True,
        # The real data's smallest premium is 131.50, and no insurer sells a year's cover for less.
        plausible_minimum=100.0,
        example=2630.0,
    ),
    Feature(
        "DaysSinceCreated",
        FeatureKind.INTEGER,
        "Days since the customer's account was created.",
        minimum=0,
        maximum=36_500,
        example=217,
    ),
)

FEATURE_NAMES: Final = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: Final = {f.name: f for f in FEATURES}
ORIGINAL_API_FIELDS: Final = tuple(f.name for f in FEATURES if f.in_original_api)

ID_COLUMN: Final = "id"
TARGET: Final = "Result"
TARGET_VALUES: Final = (0, 1)
# The column order of the raw files (train.csv, test.csv) the original system used.
RAW_COLUMNS: Final = (
    ID_COLUMN,
    "Gender",
    "Age",
    "HasDrivingLicense",
    "RegionID",
    "Switch",
    "VehicleAge",
    "PastAccident",
    "AnnualPremium",
    "SalesChannelID",
    "DaysSinceCreated",
    TARGET,
)


def clean_row(raw: dict[str, object]) -> list[float]:
    """Clean one record (a request or a CSV row) into the model's numbers, in FEATURES order.

    An absent key means unknown. Raises ContractError for the first field that breaks the contract.
    """
    return [f.clean_value(raw.get(f.name)) for f in FEATURES]


def describe() -> list[dict[str, object]]:
    """The contract as plain data, for model metadata, the model card and GET /model."""
    return [
        {
            "name": f.name,
            "kind": f.kind.value,
            "description": f.description,
            "categories": list(f.categories) or None,
            "minimum": f.minimum,
            "maximum": f.maximum,
            "blank_means": "unknown",
            "in_original_api": f.in_original_api,
        }
        for f in FEATURES
    ]
