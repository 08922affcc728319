"""Request and response models; the request model is generated from the feature contract.

Nothing here lists the features by hand: `PredictRequest` is built from `ml.contract.FEATURES`, so
the service accepts exactly what the contract allows (categories, whole-number ranges, amounts), and
a contract change changes the API with it. The contract's seven original-API fields are required
keys whose value may be null (unknown), the rest are optional; unknown fields are rejected.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)

from ml.artefact import Explanation
from ml.contract import (
    FEATURES,
    ORIGINAL_API_FIELDS,
    ContractError,
    Feature,
    FeatureKind,
)

# A body above these sizes is refused with 413 before it is parsed. 64 KiB is ~200 times a
# single request; 8 MiB holds MAX_BATCH_ROWS rows of ~400 bytes with room to spare.
MAX_PREDICT_BODY_BYTES: Final = 64 * 1024
MAX_BATCH_ROWS: Final = 10_000
MAX_BATCH_BODY_BYTES: Final = 8 * 1024 * 1024

# The request the original API documented (its README's curl command): kept working unchanged.
ORIGINAL_SAMPLE: Final[dict[str, Any]] = {
    "Gender": "Female",
    "Age": 46,
    "HasDrivingLicense": 1,
    "RegionID": 21.0,
    "Switch": 0,
    "PastAccident": "Yes",
    "AnnualPremium": "2305.40",
}


# Text for a numeric field longer than this is refused before any pattern runs on it.
MAX_TEXT_CHARS: Final = 64


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def allowed_in_requests(feature: Feature) -> str:
    """What a request may send for a feature, in words (error messages and field docs)."""
    if feature.unknown_aliases:
        aliases = " or ".join(_json(a) for a in feature.unknown_aliases)
        unknown = f"null or {aliases} (unknown)"
    else:
        unknown = "null (unknown)"
    if feature.kind is FeatureKind.CATEGORY:
        labels = ", ".join(_json(c) for c in feature.categories)
        return f"one of {labels}, or {unknown}"
    low, high = feature.bounds
    if feature.kind is FeatureKind.INTEGER:
        return f"a whole number from {low:,g} to {high:,.0f} (or its digits as text), or {unknown}"
    return (
        f'a number from {low:,g} to {high:,.0f} or currency text such as "£1,623.85", or {unknown}'
    )


def _unknown_alias_schemas(feature: Feature) -> list[dict[str, Any]]:
    return [
        {
            "const": alias,
            "type": "string" if isinstance(alias, str) else "integer",
            "description": "Unknown, as the original API encoded it: same as null.",
        }
        for alias in feature.unknown_aliases
    ]


def _category_input(feature: Feature) -> BeforeValidator:
    # The original API's encoding of unknown becomes null before the label check.
    aliases = feature.unknown_aliases

    def check(value: object) -> object:
        return None if type(value) is str and value in aliases else value

    return BeforeValidator(check)


def _numeric_input(feature: Feature) -> BeforeValidator:
    """JSON numbers pass on to the range check; text is read by the contract's own parser.

    Text must match the feature's request pattern (checked on at most MAX_TEXT_CHARS characters,
    so no pattern ever runs on a long string), which is exactly what the OpenAPI document says.
    """
    pattern = re.compile(feature.request_text_pattern())
    allowed = allowed_in_requests(feature)
    integer = feature.kind is FeatureKind.INTEGER
    aliases = feature.unknown_aliases  # numbers: -1 and -1.0 alike

    def check(value: object) -> object:
        # Exact types first (this runs for every numeric field of every request); bool is not
        # `int` here, so JSON true/false fall through to their refusal below.
        kind = type(value)
        if kind is int or kind is float:
            if value in aliases:
                return None
            if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
                raise ContractError(feature.name, value, f"not a finite number; expected {allowed}")
            return value
        if value is None:
            return None
        if kind is bool:  # JSON true/false would pass pydantic's lax int and float
            raise ContractError(feature.name, value, f"not a number; expected {allowed}")
        if not isinstance(value, str):
            return value
        if len(value) > MAX_TEXT_CHARS:
            raise ContractError(
                feature.name,
                value,
                f"text longer than {MAX_TEXT_CHARS} characters; expected {allowed}",
            )
        if not pattern.fullmatch(value):
            what = "a whole number in range" if integer else "an amount in range"
            raise ContractError(feature.name, value, f"text is not {what}; expected {allowed}")
        number = feature.clean_value(value)
        if number != number:  # blank text: unknown, like null
            return None
        return int(number) if integer else number

    return BeforeValidator(check)


def _annotation(feature: Feature) -> Any:
    """The pydantic type of one feature's request field (always nullable: null is unknown).

    Its JSON schema lists exactly what the validator accepts, so the OpenAPI document and the
    service agree both ways (tests/service/test_schemathesis.py checks positive and negative
    cases).
    """
    description = f"{feature.description} Allowed: {allowed_in_requests(feature)}."
    aliases = _unknown_alias_schemas(feature)
    if feature.kind is FeatureKind.CATEGORY:
        options: list[dict[str, Any]] = [{"enum": list(feature.categories), "type": "string"}]
        label: Any = Literal[feature.categories] | None  # type: ignore[valid-type]
        if feature.unknown_aliases:
            label = Annotated[label, _category_input(feature)]
        return Annotated[
            label,
            WithJsonSchema({"anyOf": [*options, *aliases, {"type": "null"}]}),
            Field(title=feature.name, description=description, examples=[feature.example]),
        ]
    low, high = feature.bounds
    text = {
        "type": "string",
        "maxLength": MAX_TEXT_CHARS,
        "pattern": feature.request_text_pattern(),
    }
    if feature.kind is FeatureKind.INTEGER:
        # Lax int: 46 and 46.0 are accepted (the original clients send RegionID 21.0); 46.5 is
        # refused. Text ("46") is read by the contract's parser first.
        number: Any = Annotated[int, Field(ge=int(low), le=int(high))]
        options = [{"type": "integer", "minimum": int(low), "maximum": int(high)}, text]
        examples = [feature.example]
    else:
        number = Annotated[float, Field(ge=low, le=high)]
        options = [{"type": "number", "minimum": low, "maximum": high}, text]
        examples = [feature.example, "£1,623.85 "]
    return Annotated[
        number | None,
        _numeric_input(feature),
        WithJsonSchema({"anyOf": [*options, *aliases, {"type": "null"}]}),
        Field(title=feature.name, description=description, examples=examples),
    ]


def _request_fields() -> dict[str, Any]:
    # Original-API fields are required keys (their value may be null) and come first in the
    # docs; the other features are optional.
    original = [f for f in FEATURES if f.name in ORIGINAL_API_FIELDS]
    added = [f for f in FEATURES if f.name not in ORIGINAL_API_FIELDS]
    fields: dict[str, Any] = {f.name: (_annotation(f), ...) for f in original}
    fields.update({f.name: (_annotation(f), None) for f in added})
    return fields


class _RequestBase(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [ORIGINAL_SAMPLE]}
    )


PredictRequest = create_model(  # type: ignore[call-overload]
    "PredictRequest",
    __base__=_RequestBase,
    __doc__=(
        "One customer. The seven fields of the original API are required keys whose value may be "
        "null (unknown); the other features are optional. Unknown fields are rejected."
    ),
    **_request_fields(),
)


class PredictResponse(BaseModel):
    """The original `predicted_class`, plus the probability behind it and where it came from."""

    predicted_class: Literal[0, 1] = Field(
        description="1 if the customer is predicted to buy (probability >= threshold), else 0."
    )
    probability: float = Field(ge=0.0, le=1.0, description="Probability of class 1.")
    threshold: float = Field(ge=0.0, le=1.0, description="Decision threshold of this model.")
    model_version: str = Field(description="Version of the model that answered.")
    base_value: float | None = Field(
        default=None,
        description="With explain=true: the log-odds of a customer about whom nothing is known.",
    )
    contributions: dict[str, float] | None = Field(
        default=None,
        description=(
            "With explain=true: each feature group's exact contribution to the log-odds; "
            "base_value + their sum = logit(probability)."
        ),
    )


class BatchRequest(BaseModel):
    """Many customers in one request; each row is validated like a `POST /predict` body."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: list[PredictRequest] = Field(  # type: ignore[valid-type]
        min_length=1,
        max_length=MAX_BATCH_ROWS,
        description=f"1 to {MAX_BATCH_ROWS:,} rows; an invalid row is reported by its index.",
    )


class BatchPrediction(BaseModel):
    predicted_class: Literal[0, 1]
    probability: float = Field(ge=0.0, le=1.0)
    contributions: dict[str, float] | None = Field(
        default=None, description="With explain=true: as in the POST /predict answer."
    )


class BatchResponse(BaseModel):
    """One prediction per row, in the order of the request's rows."""

    predictions: list[BatchPrediction]
    threshold: float = Field(ge=0.0, le=1.0)
    model_version: str
    base_value: float | None = Field(
        default=None, description="With explain=true: as in the POST /predict answer."
    )


class ErrorItem(BaseModel):
    """One rejected input: where it is, what was wrong and what is allowed."""

    loc: list[str | int] = Field(description='Path to the input, e.g. ["body", "rows", 3, "Age"].')
    field: str = Field(description='The field in words, e.g. "Age" or "rows[3].Age".')
    msg: str = Field(description="What was wrong and what is allowed.")
    type: str = Field(description="Machine-readable error type.")


class ValidationErrorResponse(BaseModel):
    """422: the request was well-formed HTTP but its content breaks the contract."""

    detail: list[ErrorItem] = Field(
        description="The first errors found, one per field and error type (at most 50, within "
        "a few KB whatever the input)."
    )
    error_count: int = Field(ge=1, description="How many errors the input had in all.")


class MessageResponse(BaseModel):
    """An error or status in one sentence."""

    detail: str


class RootResponse(BaseModel):
    """The original API's health answer at `GET /`, plus additions."""

    health_check: Literal["OK"] = Field(description="As the original API answered.")
    model_version: str = Field(description="Version of the model being served.")
    message: str
    status: Literal["ok"]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "not ready"]
    model_version: str | None = None
    detail: str | None = None


class ArtefactInfo(BaseModel):
    path: str
    sha256: str
    bytes: int


class TrainingDataInfo(BaseModel):
    path: str
    md5: str
    rows: int


class ModelInfo(BaseModel):
    """What is being served: identity, provenance, quality and the contract it expects."""

    version: str
    sha256: str = Field(description="sha256 of the served (compiled) model file.")
    created_at: str = Field(description="When the model was trained (ISO 8601).")
    threshold: float
    metrics: dict[str, float]
    params: dict[str, Any]
    artefacts: dict[str, ArtefactInfo]
    training_data: TrainingDataInfo
    library_versions: dict[str, str]
    feature_contract: list[dict[str, Any]]
    explanation: Explanation | None = Field(
        default=None,
        description=(
            "The base value, and each feature group's global importance on the test rows with "
            "its term's shape along each feature (null for a model evaluated before they existed)."
        ),
    )
