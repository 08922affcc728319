"""Model artefacts: sha256 checks, metadata, and refusing untrusted content."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from ml.artefact import (
    METADATA_FILE,
    ArtefactError,
    check_library_versions,
    load_pipeline,
    load_serving_model,
    read_metadata,
    write_atomic,
)


@pytest.fixture
def model_copy(trained, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(trained.model_dir, target)
    return target


def test_published_metadata_describes_the_model(trained):
    # given the metadata evaluate published
    metadata = read_metadata(trained.model_dir)
    # then it carries what a reader needs to trust and reproduce the model
    assert set(metadata.artefacts) == {"pipeline", "compiled"}
    assert metadata.training_data.rows == 16_000 and len(metadata.training_data.md5) == 32
    assert 0 < metadata.threshold < 1
    assert metadata.metrics["roc_auc"] > 0.8
    assert {"numpy", "scikit-learn", "skops", "python"} <= set(metadata.library_versions)
    assert metadata.feature_contract[0]["name"] == "RegionID"
    assert metadata.params["hgb"]["max_leaf_nodes"] >= 2


def test_serving_model_loads_after_verification(model_copy):
    model, metadata = load_serving_model(model_copy)
    assert 0 <= model.predict_proba_one([float("nan")] * 10) <= 1
    assert metadata.version.startswith("0.")


def test_a_changed_byte_is_caught_by_sha256(model_copy):
    path = model_copy / "model.npz"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="model.npz: sha256 [0-9a-f]+ does not match"):
        load_serving_model(model_copy)


def test_a_missing_model_names_commands_that_work_on_a_fresh_clone(model_copy):
    (model_copy / "model.npz").unlink()
    # make run works anywhere; dvc pull only where a remote holds this dvc.lock's model
    with pytest.raises(
        ArtefactError,
        match=r"model file not found; run `make run` to train one here, or "
        r"`dvc pull train evaluate` to fetch the model of this checkout's dvc.lock",
    ):
        load_serving_model(model_copy)


def test_missing_or_invalid_metadata(model_copy):
    (model_copy / METADATA_FILE).write_text('{"version": 1}')
    with pytest.raises(ArtefactError, match="model metadata is not valid"):
        read_metadata(model_copy)
    (model_copy / METADATA_FILE).unlink()
    with pytest.raises(ArtefactError, match="model metadata not found"):
        read_metadata(model_copy)


def test_a_model_from_another_major_library_version_is_refused(trained):
    metadata = read_metadata(trained.model_dir)
    with pytest.raises(ArtefactError, match="saved with numpy 2.+ this environment has 1.26.0"):
        check_library_versions(metadata, {"numpy": "1.26.0"})


def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path):
    # given a skops file that would call os.system when used
    buffer = io.BytesIO()
    sio.dump(FunctionTransformer(os.system), buffer)
    path = tmp_path / "model.skops"
    path.write_bytes(buffer.getvalue())
    # then loading refuses it instead of trusting it
    with pytest.raises(ArtefactError, match="types outside the trusted list: .*posix.system"):
        load_pipeline(path)


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    path.write_text("old")

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, json.dumps({"new": 1}))
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"], "no temporary file left"
