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
    # What the original API's clients send to mean unknown (its training pipeline filled blanks
    # with these): a request carrying one is answered exactly as if the field were null. Requests
    # only; a raw data file's blank is its unknown.
    unknown_aliases: tuple[str | int, ...] = ()
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

    def is_unknown_alias(self, raw: object) -> bool:
        """Whether a request value is one of the original API's encodings of unknown.

        Numbers compare by value (`-1` and `-1.0` alike); text must match exactly.
        """
        if isinstance(raw, bool) or not self.unknown_aliases:
            return False
        if self.kind is FeatureKind.CATEGORY:
            return isinstance(raw, str) and raw in self.unknown_aliases
        return isinstance(raw, int | float) and raw in self.unknown_aliases

    def request_text_pattern(self) -> str:
        """The regular expression (JSON Schema dialect too) of the text a request may send for
        a numeric feature: ASCII digits only, within the feature's range, so that every text it
        matches is read by `clean_value` into an allowed number, and nothing else is.
        """
        low, high = self.bounds
        if self.kind is FeatureKind.INTEGER:
            return rf"^ *({_integer_range_pattern(int(low), int(high))})(\.0*)? *$"
        return _amount_pattern(low, high)

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


# ASCII digits only ([0-9], not \\d, which matches any script's digits): every numeric field, in
# data files and requests, reads the same digits as a JSON number does.
_MONEY: Final = r"£?\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?"
_NUMBER: Final = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_MONEY_TEXT: Final = re.compile(f"^{_MONEY}$")
_NUMBER_TEXT: Final = re.compile(f"^{_NUMBER}$")
# Any text a money feature accepts (blank: unknown), for schemas such as the service's OpenAPI.
MONEY_TEXT_PATTERN: Final = rf"^\s*({_MONEY}|{_NUMBER})?\s*$"


def _integer_range_pattern(low: int, high: int) -> str:
    """An alternation matching exactly the decimal integers low..high (no sign, no leading 0)."""
    parts: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        end = min(high, 10**digits - 1)
        if start <= end:
            parts += _same_length_range(str(start), str(end))
    return "|".join(parts)


def _same_length_range(low: str, high: str) -> list[str]:
    if low == high:
        return [low]
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    if low[0] == high[0]:
        return [low[0] + rest for rest in _same_length_range(low[1:], high[1:])]
    width = len(low) - 1
    parts: list[str] = []
    first, last = int(low[0]), int(high[0])
    if low[1:] != "0" * width:  # the partial block at the bottom: low .. low[0]99..9
        parts += [low[0] + rest for rest in _same_length_range(low[1:], "9" * width)]
        first += 1
    if high[1:] != "9" * width:
        last -= 1
    if first <= last:  # the full blocks in between
        lead = str(first) if first == last else f"[{first}-{last}]"
        parts.append(lead + ("[0-9]" if width == 1 else f"[0-9]{{{width}}}"))
    if high[1:] != "9" * width:  # the partial block at the top: high[0]00..0 .. high
        parts += [high[0] + rest for rest in _same_length_range("0" * width, high[1:])]
    return parts


def _amount_pattern(low: float, high: float) -> str:
    """Request text for an amount from 0 to a power of ten: "2305.40", "£1,623.85 ", blank."""
    exponent = round(math.log10(high)) if high > 0 else 0
    if low != 0 or high != 10**exponent or exponent < 4:
        raise TypeError(f"amount text is defined for 0 to a power of ten >= 10,000, not {high}")
    below = [_integer_range_pattern(0, 10**exponent - 1)]
    for digits in range(4, exponent + 1):  # 1,000 .. 999,999: grouped by thousands
        lead = digits % 3 or 3
        head = "[1-9]" + {1: "", 2: "[0-9]"}.get(lead, f"[0-9]{{{lead - 1}}}")
        below.append(head + ",[0-9]{3}" * ((digits - lead) // 3))
    amount = f"({'|'.join(below)})(\\.[0-9]+)?|({10**exponent}|{10**exponent:,})(\\.0+)?"
    return rf"^ *((£ *)?({amount}))? *$"


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
        unknown_aliases=(-1,),
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
        unknown_aliases=("Unknown",),
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
            "request_unknown_aliases": list(f.unknown_aliases),
            "in_original_api": f.in_original_api,
        }
        for f in FEATURES
    ]
