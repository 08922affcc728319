"""The model artefact on disk: files, their metadata, and the checks that run before serving.

A model directory holds:
  model.skops  the fitted scikit-learn pipeline (skops format: loads only trusted types, no pickle)
  model.npz    the same model compiled to lookup tables for serving (numpy arrays, no pickle)
  model.json   metadata: version, sha256 of each file, md5 of the training data, parameters,
               metrics, decision threshold, library versions and the feature contract
Whoever loads a file checks its sha256 against model.json first.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml.compiled import CompiledModel, CompiledModelError

PIPELINE_FILE: Final = "model.skops"
COMPILED_FILE: Final = "model.npz"
METADATA_FILE: Final = "model.json"


class ArtefactError(RuntimeError):
    """A model artefact is missing, corrupt or was made by incompatible libraries.

    The message names the file, what is wrong and the command that fixes it.
    """


class ArtefactFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int


class TrainingData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    rows: int


class TermShape(BaseModel):
    """A group's term along one of its features: the mean term among rows with each value."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    feature: str
    values: list[str | float] = Field(description="categories, codes, or numeric bin medians")
    mean_term: list[float | None] = Field(description="log-odds; null: no row had the value")
    unknown: float | None = Field(description="mean term of rows where the feature is unknown")


class GroupImportance(BaseModel):
    """How much one feature group's term moves predictions, over the evaluation rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    group: str
    features: list[str]
    importance: float = Field(ge=0.0, description="mean |term - its mean| in log-odds")
    share: float = Field(ge=0.0, le=1.0, description="this group's part of all groups' importance")
    shape: list[TermShape] = Field(default_factory=list, description="one per member feature")


class Explanation(BaseModel):
    """Global explanation of an additive model: its base value and each group's importance."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base_value: float
    rows: int
    groups: list[GroupImportance]


class ModelMetadata(BaseModel):
    """Everything a reader needs to trust, reproduce and describe a trained model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format_version: int = 1
    version: str
    created_at: str
    artefacts: dict[str, ArtefactFile]
    training_data: TrainingData
    params: dict[str, Any]
    metrics: dict[str, float]
    threshold: float = Field(ge=0.0, le=1.0)
    library_versions: dict[str, str]
    feature_contract: list[dict[str, Any]]
    # Written by the evaluate stage since explanations exist; older metadata loads without it.
    explanation: Explanation | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: Path) -> ArtefactFile:
    return ArtefactFile(path=path.name, sha256=sha256_of(path), bytes=path.stat().st_size)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; artefacts are read by other users (the image)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_metadata(model_dir: Path, metadata: ModelMetadata) -> Path:
    path = model_dir / METADATA_FILE
    write_atomic(path, metadata.model_dump_json(indent=2) + "\n")
    return path


# The only types a model.skops file may contain; anything else is refused when loading.
TRUSTED_TYPES: Final = [
    "ml.features.RawFeatureCleaner",
    "sklearn.pipeline.Pipeline",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "numpy.random._generator.Generator",
    "numpy.random._pcg64.PCG64",
    "builtins.slice",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "collections.OrderedDict",
]

# On a fresh clone the DVC remote holds no model yet, so the command that always works comes
# first; `dvc pull` works where a remote holds the model of this checkout's dvc.lock.
FETCH_HINT: Final = (
    "run `make run` to train one here, or `dvc pull train evaluate` to fetch the model of this "
    "checkout's dvc.lock from a DVC remote that holds it"
)


def read_metadata(model_dir: Path) -> ModelMetadata:
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise ArtefactError(f"{path}: model metadata not found; {FETCH_HINT}")
    try:
        return ModelMetadata.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as error:
        raise ArtefactError(f"{path}: model metadata is not valid ({error})") from error


def verify_file(model_dir: Path, metadata: ModelMetadata, name: str) -> Path:
    """Check one artefact file against the sha256 recorded in the metadata; return its path."""
    return read_verified(model_dir, metadata, name)[0]


def read_verified(model_dir: Path, metadata: ModelMetadata, name: str) -> tuple[Path, bytes]:
    """Read one artefact file once and check those bytes against the recorded sha256.

    Loading the returned bytes (not the file again) serves exactly what was verified.
    """
    entry = metadata.artefacts.get(name)
    if entry is None:
        raise ArtefactError(f"{model_dir / METADATA_FILE}: lists no artefact {name!r}")
    path = model_dir / entry.path
    if not path.exists():  # a folder in its place is a read error, said as such below
        raise ArtefactError(f"{path}: model file not found; {FETCH_HINT}")
    content = path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != entry.sha256:
        raise ArtefactError(
            f"{path}: sha256 {actual} does not match {entry.sha256} recorded in "
            f"{METADATA_FILE}; the file is corrupt or from another model; {FETCH_HINT}"
        )
    return path, content


def check_library_versions(metadata: ModelMetadata, installed: dict[str, str]) -> None:
    """Refuse a model whose file formats came from another major version of a library."""
    for library, version in installed.items():
        recorded = metadata.library_versions.get(library)
        if recorded is None:
            raise ArtefactError(f"model metadata records no version of {library}")
        if recorded.split(".")[0] != version.split(".")[0]:
            raise ArtefactError(
                f"model was saved with {library} {recorded}, this environment has {version}: "
                "retrain the model or install a compatible version"
            )


def load_serving_model(model_dir: Path) -> tuple[CompiledModel, ModelMetadata]:
    """Read metadata, verify the compiled model's sha256 and numpy version, then load it."""
    import numpy

    metadata = read_metadata(model_dir)
    path, content = read_verified(model_dir, metadata, "compiled")
    check_library_versions(metadata, {"numpy": numpy.__version__})
    try:
        return CompiledModel.load(path, content), metadata
    except CompiledModelError as error:
        raise ArtefactError(str(error)) from error


def load_pipeline(path: Path, content: bytes | None = None) -> Any:
    """Load a model.skops file, allowing only TRUSTED_TYPES: loading never runs arbitrary code.

    Pass the `content` read_verified returned to load exactly the verified bytes. Needs the
    training dependencies (skops).
    """
    import skops.io as sio

    data = path.read_bytes() if content is None else content
    untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    if untrusted:
        raise ArtefactError(f"{path}: contains types outside the trusted list: {sorted(untrusted)}")
    return sio.loads(data, trusted=TRUSTED_TYPES)
