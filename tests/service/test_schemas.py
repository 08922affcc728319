"""The request model is the feature contract: same names, categories and ranges, as strict."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ml.artefact import load_serving_model
from ml.contract import (
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    ORIGINAL_API_FIELDS,
    FeatureKind,
    clean_row,
)
from service.inference import Predictor, clean_matrix
from service.schemas import MAX_TEXT_CHARS, ORIGINAL_SAMPLE, BatchRequest, PredictRequest
from tests.service.model_factory import sample_requests

SCHEMA = PredictRequest.model_json_schema()


def _non_null(property_schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in property_schema["anyOf"] if s.get("type") != "null"]


def test_request_fields_are_the_contract_features() -> None:
    # given the generated request model / when its fields are listed / then they are the contract's
    assert set(PredictRequest.model_fields) == set(FEATURE_NAMES)
    required = {name for name, f in PredictRequest.model_fields.items() if f.is_required()}
    assert required == set(ORIGINAL_API_FIELDS), "the original API's fields must be required"
    assert SCHEMA["additionalProperties"] is False, "unknown fields must be rejected"


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_each_field_allows_what_the_contract_allows(feature: Any) -> None:
    # given one contract feature / when its request field's JSON schema is read
    options = _non_null(SCHEMA["properties"][feature.name])
    # then categories, integer ranges, text and the original API's unknowns are the contract's
    assert {"type": "null"} in SCHEMA["properties"][feature.name]["anyOf"], "null means unknown"
    aliases = [o["const"] for o in options if "const" in o]
    assert aliases == list(feature.unknown_aliases), "the original encodings of unknown"
    values = [o for o in options if "const" not in o]
    text = {
        "type": "string",
        "maxLength": MAX_TEXT_CHARS,
        "pattern": feature.request_text_pattern() if feature.kind != FeatureKind.CATEGORY else "",
    }
    if feature.kind is FeatureKind.CATEGORY:
        assert values == [{"enum": list(feature.categories), "type": "string"}]
    elif feature.kind is FeatureKind.INTEGER:
        low, high = feature.bounds
        assert values == [{"type": "integer", "minimum": low, "maximum": high}, text]
    else:
        low, high = feature.bounds
        assert values == [{"type": "number", "minimum": low, "maximum": high}, text]


def test_the_original_sample_payload_is_accepted() -> None:
    # given the payload the original API documented / when validated / then it passes unchanged
    request = PredictRequest.model_validate(ORIGINAL_SAMPLE)
    assert vars(request)["RegionID"] == 21, "RegionID 21.0 must be read as region 21"
    assert vars(request)["AnnualPremium"] == pytest.approx(2305.40)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Age", 69.0, 69),
        ("Age", "69", 69),
        ("Age", None, None),
        ("AnnualPremium", "£1,623.85 ", 1623.85),
        ("AnnualPremium", 2630, 2630.0),
        ("AnnualPremium", "  ", None),
        ("Gender", "Male", "Male"),
        ("VehicleAge", "> 2 Years", "> 2 Years"),
    ],
)
def test_lenient_where_the_original_clients_need_it(field: str, value: Any, expected: Any) -> None:
    # given a valid body with one field written as old clients or the raw data write it
    body = {**ORIGINAL_SAMPLE, field: value}
    # when validated / then it means what the contract says
    assert vars(PredictRequest.model_validate(body))[field] == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Age", 69.5),
        ("Age", 17),
        ("Age", 101),
        ("Age", True),
        ("HasDrivingLicense", True),
        ("HasDrivingLicense", 2),
        ("RegionID", "north"),
        ("Gender", "male"),
        ("Gender", ""),
        ("PastAccident", 1),
        ("AnnualPremium", "£-5"),
        ("AnnualPremium", 1_000_001),
        ("AnnualPremium", "1,62,3"),
        ("AnnualPremium", False),
        ("DaysSinceCreated", -1),
    ],
)
def test_strict_where_the_contract_is(field: str, value: Any) -> None:
    # given a body with one value the contract does not allow
    body = {**ORIGINAL_SAMPLE, field: value}
    # when validated / then it is rejected, and the error is located at that field
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_unknown_and_missing_fields_are_rejected() -> None:
    # given bodies with an unknown field and without a required one
    with pytest.raises(ValidationError, match="Extra inputs"):
        PredictRequest.model_validate({**ORIGINAL_SAMPLE, "Salary": 1})
    without_gender = {k: v for k, v in ORIGINAL_SAMPLE.items() if k != "Gender"}
    with pytest.raises(ValidationError, match="Gender"):
        PredictRequest.model_validate(without_gender)


def test_batch_limits_rows() -> None:
    # given an empty batch / when validated / then it is rejected (at least one row)
    with pytest.raises(ValidationError, match="at least 1"):
        BatchRequest.model_validate({"rows": []})


def test_batch_cleaning_matches_the_contracts_row_cleaning() -> None:
    # given many valid requests, validated like the service validates them
    rows = [vars(PredictRequest.model_validate(b)) for b in sample_requests(300, seed=5)]
    # when cleaned column-wise for a batch and row by row with the contract's clean_row
    matrix = clean_matrix(rows)
    expected = [clean_row(row) for row in rows]
    # then both give the same numbers (NaN for unknown)
    for got, want in zip(matrix.tolist(), expected, strict=True):
        assert all(
            (math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want, strict=True)
        ), f"batch cleaning {got} differs from clean_row {want}"


def test_batch_and_single_predictions_agree(model_dir: Path) -> None:
    # given the fixture model and many valid rows
    predictor = Predictor(*load_serving_model(model_dir))
    rows = [vars(PredictRequest.model_validate(b)) for b in sample_requests(200, seed=6)]
    # when scored as one batch and one by one
    classes, probabilities = predictor.predict_many(rows)
    singles = [predictor.predict_one(row) for row in rows]
    # then the answers are the same
    assert classes == [c for c, _ in singles]
    assert probabilities == pytest.approx([p for _, p in singles], abs=1e-12)


def test_contract_lookup_is_complete() -> None:
    # the request model's field docs name what is allowed for every feature
    for name, field in PredictRequest.model_fields.items():
        assert field.description and "Allowed:" in field.description, name
        assert FEATURES_BY_NAME[name].description in field.description


# -- the document and the validator agree: text, aliases, NaN -------------------------------
NUMERIC = [f for f in FEATURES if f.kind is not FeatureKind.CATEGORY]


def _accepts(feature_name: str, value: Any) -> bool:
    try:
        PredictRequest.model_validate({**ORIGINAL_SAMPLE, feature_name: value})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("feature", NUMERIC, ids=lambda f: f.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_text_the_document_allows_is_accepted_and_read_by_the_contract(
    feature: Any, data: st.DataObject
) -> None:
    # given text matching the field's documented pattern (within its documented length)
    pattern = _non_null(SCHEMA["properties"][feature.name])[1]
    text = data.draw(
        st.from_regex(pattern["pattern"], fullmatch=True).filter(lambda s: len(s) <= 64)
    )
    # when validated / then it is accepted, as the number the contract's parser reads
    got = vars(PredictRequest.model_validate({**ORIGINAL_SAMPLE, feature.name: text}))
    expected = feature.clean_value(text)
    assert (got[feature.name] is None) if math.isnan(expected) else got[feature.name] == expected


@pytest.mark.parametrize("feature", NUMERIC, ids=lambda f: f.name)
@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789 .,£+-eE_\u0664", max_size=12),
        st.text(max_size=8),
        st.from_regex(r"[0-9]{1,8}(\.[0-9]{0,3})?", fullmatch=True),
    )
)
def test_text_is_accepted_exactly_when_the_document_allows_it(feature: Any, text: str) -> None:
    # given any short text / when validated / then accepted if and only if the pattern matches
    allowed = re.fullmatch(feature.request_text_pattern(), text) is not None
    assert _accepts(feature.name, text) == allowed, f"{feature.name}={text!r}: document {allowed}"


@pytest.mark.parametrize("feature", NUMERIC, ids=lambda f: f.name)
def test_text_over_the_documented_length_is_refused_before_any_pattern(feature: Any) -> None:
    # given digits far over the documented maxLength / when validated / then refused as too long
    with pytest.raises(ValidationError, match="longer than 64 characters"):
        PredictRequest.model_validate({**ORIGINAL_SAMPLE, feature.name: "1" * 8_000_000})


@pytest.mark.parametrize("feature", NUMERIC, ids=lambda f: f.name)
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused_in_every_numeric_field(
    feature: Any, literal: str
) -> None:
    # given a JSON body with a NaN or Infinity literal (pydantic's parser reads them)
    body = orjson.dumps({**ORIGINAL_SAMPLE, feature.name: 0}).decode()
    body = body.replace(f'"{feature.name}":0', f'"{feature.name}":{literal}')
    # when validated / then refused at that field (NaN is not unknown: null is)
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate_json(body)
    assert caught.value.errors()[0]["loc"][0] == feature.name


@pytest.mark.parametrize("feature", NUMERIC, ids=lambda f: f.name)
@pytest.mark.parametrize(
    "digits",
    ["\u0664\u0666", "\uff14\uff16", "\u096a\u096c"],
    ids=["arabic", "fullwidth", "devanagari"],
)
def test_non_ascii_digits_are_refused_alike_in_every_numeric_field(
    feature: Any, digits: str
) -> None:
    # given digits of another script (Python's float() would read them as 46)
    # when validated / then every numeric field refuses them, as JSON numbers cannot carry them
    assert not _accepts(feature.name, digits)


@pytest.mark.parametrize(
    ("field", "alias"),
    [("Switch", -1), ("Switch", -1.0), ("PastAccident", "Unknown")],
)
def test_the_original_encodings_of_unknown_mean_null(field: str, alias: Any) -> None:
    # given the original API's encoding of unknown / when validated / then it is null
    assert vars(PredictRequest.model_validate({**ORIGINAL_SAMPLE, field: alias}))[field] is None
    feature = FEATURES_BY_NAME[field]
    assert feature.is_unknown_alias(alias), "the contract names the alias"
    assert not feature.is_unknown_alias(True), "a boolean is never an alias"


@pytest.mark.parametrize(
    ("field", "value"),
    [("Switch", "-1"), ("Switch", -2), ("PastAccident", "unknown"), ("Gender", "Unknown")],
)
def test_only_the_original_encodings_are_aliases(field: str, value: Any) -> None:
    # given look-alikes of the aliases, or an alias on another field / then they are refused
    assert not _accepts(field, value)
