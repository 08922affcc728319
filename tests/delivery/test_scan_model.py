"""scripts/scan_model.py: passes clean model files, fails any that could run code when loaded."""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tests.conftest import REPO_ROOT
from tests.delivery.conftest import load_script

scan = load_script("scan_model")
MODELSCAN = REPO_ROOT / ".venv" / "bin" / "modelscan"


class RunsACommand:
    """Unpickling this calls os.system: what modelscan exists to catch."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


@pytest.fixture(scope="module")
def clean_skops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fitted pipeline of types skops trusts by default, saved as .skops."""
    path = tmp_path_factory.mktemp("models") / "model.skops"
    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    sio.dump(pipeline.fit(features, [0, 0, 1, 1]), path)
    return path


def object_array_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def modelscan_report(*scanned: str, errors: tuple[str, ...] = ()) -> dict[str, object]:
    """What modelscan 0.8.8 reports: scanned sources, and errors per source."""
    return {
        "summary": {"scanned": {"total_scanned": len(scanned), "scanned_files": list(scanned)}},
        "issues": [],
        "errors": [{"category": "MODEL_SCAN", "description": "x", "source": s} for s in errors],
    }


def run_cli(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str, str]:
    status = scan.main([*map(str, files), "--modelscan", str(MODELSCAN)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_clean_skops_and_npz_files_pass(
    clean_skops: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    compiled = tmp_path / "model.npz"
    np.savez(compiled, thresholds=np.arange(4.0), leaves=np.array([1, 2]))
    # when
    status, out, err = run_cli(capsys, clean_skops, compiled)
    # then
    assert status == 0, err
    assert f"{clean_skops}: clean" in out
    assert f"{compiled}: clean; 0 member(s) scanned by modelscan, 2 checked here" in out


def test_a_pickle_that_runs_a_command_fails_on_modelscans_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(RunsACommand()))
    # when
    status, _, err = run_cli(capsys, model)
    # then
    assert status == 1
    assert f"FINDING {model}: modelscan CRITICAL: Use of unsafe operator 'system'" in err


def test_an_object_array_in_an_npz_fails_even_where_modelscan_cannot_read_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    model = tmp_path / "model.npz"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("thresholds.npy", object_array_npy())
    # when
    status, _, err = run_cli(capsys, model)
    # then
    assert status == 1
    assert f"FINDING {model}:thresholds.npy: array of dtype object holds Python objects" in err


def test_a_tampered_skops_file_with_an_object_array_fails(
    clean_skops: Path, tmp_path: Path
) -> None:
    # given: one numeric array of a real .skops file swapped for an object array
    tampered = tmp_path / "model.skops"
    with zipfile.ZipFile(clean_skops) as source, zipfile.ZipFile(tampered, "w") as target:
        members = source.namelist()
        victim = next(name for name in members if name.endswith(".npy"))
        for name in members:
            target.writestr(name, object_array_npy() if name == victim else source.read(name))
    result = scan.FileScan(tampered)
    # when: modelscan (numpy >= 2.4) fails on every array, as it does on this machine
    covered = scan.apply_modelscan_report(
        result, modelscan_report(errors=tuple(f"{tampered.name}:{name}" for name in members))
    )
    scan.check_archive(result, covered, trusted=[])
    # then
    assert result.findings == [
        f"{tampered}:{victim}: array of dtype object holds Python objects: it loads only "
        "through pickle, which can run code (expected numeric arrays only)"
    ]


def test_a_skops_type_outside_the_trusted_list_fails(tmp_path: Path) -> None:
    # given: a pipeline that would call math.sqrt, which nobody trusted
    path = tmp_path / "model.skops"
    sio.dump(Pipeline([("root", FunctionTransformer(math.sqrt))]), path)
    result = scan.FileScan(path)
    # when
    scan.check_archive(result, covered=set(), trusted=["sklearn.pipeline.Pipeline"])
    # then
    assert len(result.findings) == 1, result.findings
    assert result.findings[0].startswith(f"{path}:schema.json: types outside the trusted list: [")
    assert "math.sqrt" in result.findings[0]


def test_the_trusted_list_is_the_one_the_loader_enforces() -> None:
    # given
    from ml.artefact import TRUSTED_TYPES

    # when / then
    assert scan.project_trusted_types() == list(TRUSTED_TYPES)


def test_a_member_nobody_checks_fails(tmp_path: Path) -> None:
    # given: an archive member that is neither an array nor modelscan-scanned
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.bin", b"\x00\x01")
    result = scan.FileScan(path)
    # when
    scan.check_archive(result, covered=set(), trusted=[])
    # then
    assert result.findings == [
        f"{path}:notes.bin: modelscan did not scan it and no other check here covers it"
    ]


def test_members_modelscan_scanned_count_as_covered(tmp_path: Path) -> None:
    # given: modelscan scanned one member and failed on another
    path = tmp_path / "model.npz"
    np.savez(path, a=np.arange(2.0), b=np.arange(3.0))
    result = scan.FileScan(path)
    report = modelscan_report(
        f"{path.name}:a.npy", f"{path.name}:b.npy", errors=("model.npz:b.npy",)
    )
    # when
    covered = scan.apply_modelscan_report(result, report)
    scan.check_archive(result, covered, trusted=[])
    # then
    assert covered == {"a.npy"}, "a member modelscan failed on is not covered by it"
    assert result.scanned_by_modelscan == ["a.npy"]
    assert result.checked_here == ["b.npy"]
    assert result.findings == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x93NUMPY\x01\x00" + b"garbage", "not a valid .npy array header"),
        (b"PK\x03\x04 not numpy", "not a valid .npy array header"),
    ],
)
def test_a_damaged_array_header_is_a_finding(content: bytes, expected: str) -> None:
    # when
    problem = scan.npy_header_problem(io.BytesIO(content))
    # then
    assert problem is not None and expected in problem


def test_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # when
    status, _, err = run_cli(capsys, tmp_path / "model.skops")
    # then
    assert status == 2
    assert "no such file (run `dvc repro` or `dvc pull` first)" in err


def test_a_missing_modelscan_is_a_usage_error(
    clean_skops: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # when
    status = scan.main([str(clean_skops), "--modelscan", str(tmp_path / "modelscan")])
    # then
    assert status == 2
    assert "modelscan not found at" in capsys.readouterr().err
