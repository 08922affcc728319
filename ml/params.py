"""Typed views of params.yaml: one strict, frozen model per pipeline stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml.contract import FEATURE_NAMES

PARAMS_FILE: Final = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or breaks the schema; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyntheticParams(_Strict):
    train_rows: Annotated[int, Field(ge=100, le=20_000_000)]
    test_rows: Annotated[int, Field(ge=100, le=20_000_000)]
    seed: int


class DataParams(_Strict):
    source: str = Field(min_length=1)
    s3_endpoint_url: str | None = None
    synthetic: SyntheticParams

    @model_validator(mode="after")
    def _known_source(self) -> Self:
        if (
            self.source != "synthetic"
            and "://" in self.source
            and not self.source.startswith("s3://")
        ):
            raise ValueError(
                f"source {self.source!r}: expected 'synthetic', a local folder or s3://bucket/prefix/"
            )
        return self


class ValidateParams(_Strict):
    # Above this share of quarantined rows a file is refused: it is the wrong file, not one to
    # train on what is left.
    max_quarantined_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    # Test rows identical to a training row (every column but the id) above this share refuse
    # the test file; chance alone gives about 0.1% on the real data.
    max_identical_share: Annotated[float, Field(ge=0, le=1)] = 0.01


class HGBParams(_Strict):
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    max_iter: Annotated[int, Field(ge=1, le=10_000)]
    max_leaf_nodes: Annotated[int, Field(ge=2, le=256)]
    min_samples_leaf: Annotated[int, Field(ge=1)]
    l2_regularization: Annotated[float, Field(ge=0)]
    n_iter_no_change: Annotated[int, Field(ge=1)]


class TrainParams(_Strict):
    seed: int
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)]
    threshold_beta: Annotated[float, Field(gt=0)]
    interaction_groups: list[list[str]]
    hgb: HGBParams

    @model_validator(mode="after")
    def _groups_are_disjoint_features(self) -> Self:
        seen: set[str] = set()
        for group in self.interaction_groups:
            for name in group:
                if name not in FEATURE_NAMES:
                    raise ValueError(
                        f"interaction_groups: unknown feature {name!r}; allowed: {FEATURE_NAMES}"
                    )
                if name in seen:
                    raise ValueError(f"interaction_groups: {name!r} is in more than one group")
                seen.add(name)
        return self


class EvaluateParams(_Strict):
    min_roc_auc: Annotated[float, Field(ge=0.5, le=1)]
    max_auc_drop: Annotated[float, Field(ge=0, le=0.5)]
    calibration_bins: Annotated[int, Field(ge=2, le=100)]


class DriftParams(_Strict):
    """The drift stage: the incoming batch against a reference (see ml/drift.py)."""

    reference: str | None = None
    s3_endpoint_url: str | None = None
    max_psi: Annotated[float, Field(gt=0, le=10)] = 0.2
    max_missing_rate_change: Annotated[float, Field(gt=0, le=1)] = 0.10
    fail_on_drift: bool = False

    @model_validator(mode="after")
    def _known_reference(self) -> Self:
        if (
            self.reference is not None
            and "://" in self.reference
            and not (self.reference.startswith("s3://"))
        ):
            raise ValueError(
                f"reference {self.reference!r}: expected a local raw CSV or s3://bucket/key"
            )
        return self


class Params(_Strict):
    data: DataParams
    # "validate" would shadow pydantic's BaseModel.validate: the section is read by its alias.
    validation: ValidateParams = Field(alias="validate")
    train: TrainParams
    evaluate: EvaluateParams
    # Optional: a params.yaml without the section compares nothing.
    drift: DriftParams = DriftParams()


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; a typo or a bad value is an error naming the key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ParamsError(f"{path}: not found (run from the repository root)") from error
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from error
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ParamsError(f"{path}: {problems}") from error
