"""Loading the served model: every way it can be unusable becomes one ModelUnusable with its reason.

`ml.artefact.load_serving_model` verifies the sha256 and the numpy version; a file can still pass
those and be useless: unreadable (permissions), truncated before its sha256 was recorded, or full
of NaN (it would answer `probability: null`). The service refuses all of them before serving.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ml.artefact import COMPILED_FILE, FETCH_HINT, ArtefactError, ModelMetadata, load_serving_model
from ml.compiled import CompiledModel


class ModelUnusable(RuntimeError):
    """The model directory cannot be served; the message names the file and the fix."""


def load_model(model_dir: Path) -> tuple[CompiledModel, ModelMetadata]:
    """The verified, loaded and sane model of `model_dir`, or ModelUnusable saying why not."""
    try:
        compiled, metadata = load_serving_model(model_dir)
    except ArtefactError as error:
        raise ModelUnusable(str(error)) from None
    except OSError as error:
        where = error.filename or model_dir
        raise ModelUnusable(
            f"{where}: cannot read the model ({error.strerror}); {FETCH_HINT}"
        ) from None
    # Whatever else loading raises (a truncated zip, a broken compressed stream) means the same:
    # this file is not a usable model.
    except Exception as error:
        path = model_dir / COMPILED_FILE
        raise ModelUnusable(
            f"{path}: not a readable compiled model ({type(error).__name__}: {error}); {FETCH_HINT}"
        ) from None
    check_finite(compiled, model_dir / COMPILED_FILE)
    return compiled, metadata


def check_finite(compiled: CompiledModel, path: Path) -> None:
    """Refuse a model with NaN or infinite numbers: it would answer no probability."""
    if not math.isfinite(compiled.intercept):
        raise ModelUnusable(f"{path}: the intercept is {compiled.intercept}; retrain the model")
    for j, feature_bins in enumerate(compiled.bins):
        if not all(math.isfinite(edge) for edge in feature_bins.edges):
            raise ModelUnusable(f"{path}: bin edges of feature {j} are not finite; retrain")
    for k, group in enumerate(compiled.groups):
        if not np.isfinite(group.table).all():
            bad = int((~np.isfinite(group.table)).sum())
            raise ModelUnusable(
                f"{path}: table {k} holds {bad:,} NaN or infinite values of {group.table.size:,}; "
                "the model would answer no probability; retrain the model"
            )
