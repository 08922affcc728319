"""The champion: the last published model that passed the quality gate, found in git history.

Committing a failed run's metrics cannot lower the bar: history is searched for the newest
`reports/metrics.json` whose gate passed (an overridden model did not pass). Its model is fetched
from the revision it was published at: `dvc.lock` of that commit names model.npz by md5, which is
read from the DVC cache, or else from the DVC remote (`dvc get --rev`). The challenger and the
champion are then scored on the same test file. When the champion's model cannot be had, its
recorded ROC AUC still counts if it was measured on a test file with the same md5; otherwise
there is no comparison, and the metrics and the model card say so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from ml.compiled import CompiledModel, CompiledModelError
from ml.paths import METRICS_FILE, MODEL_DIR

COMPILED_OUT: Final = (MODEL_DIR / "model.npz").as_posix()
# How far back history is searched for a model that passed.
MAX_REVISIONS: Final = 100
DVC_CACHE: Final = Path(".dvc/cache/files/md5")


@dataclass(frozen=True)
class Champion:
    """The model to beat: where it was published, what it scored, and the model itself."""

    revision: str
    recorded_roc_auc: float
    test_md5: str | None
    model: CompiledModel | None
    # Why the model itself is missing (it is then only comparable on the same test file).
    missing_because: str | None = None


def _git(*arguments: str, root: Path) -> subprocess.CompletedProcess[str]:
    # Fixed git subcommands; revisions come from git's own output.
    return subprocess.run(  # noqa: S603
        ["git", *arguments],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )


def _published_metrics(root: Path) -> list[tuple[str, dict]]:
    """(revision, metrics) of each commit that changed reports/metrics.json, newest first."""
    try:
        log = _git(
            "log", f"-{MAX_REVISIONS}", "--format=%H", "--", METRICS_FILE.as_posix(), root=root
        )
    except OSError:
        return []
    found = []
    for revision in log.stdout.split() if log.returncode == 0 else []:
        shown = _git("show", f"{revision}:{METRICS_FILE.as_posix()}", root=root)
        try:
            found.append((revision, json.loads(shown.stdout)))
        except json.JSONDecodeError:
            continue
    return found


def _passed(metrics: dict) -> bool:
    gate = metrics.get("gate")
    return isinstance(gate, dict) and gate.get("passed") is True and "roc_auc" in metrics


def _locked_md5(revision: str, root: Path) -> str | None:
    shown = _git("show", f"{revision}:dvc.lock", root=root)
    if shown.returncode != 0:
        return None
    try:
        lock = yaml.safe_load(shown.stdout)
        for stage in lock["stages"].values():
            for out in stage.get("outs", []):
                if out["path"] == COMPILED_OUT:
                    return str(out["md5"])
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    return None


def _fetch_compiled(revision: str, md5: str, root: Path) -> bytes:
    """model.npz of a revision: from the DVC cache, or from the remote through `dvc get`."""
    cached = root / DVC_CACHE / md5[:2] / md5[2:]
    if cached.is_file():
        return cached.read_bytes()
    dvc = shutil.which("dvc")
    if dvc is None:
        raise FileNotFoundError("not in the DVC cache, and no dvc command to fetch it")
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "model.npz"
        fetched = subprocess.run(  # noqa: S603 -- dvc from PATH, revision from git's output
            [dvc, "get", str(root.resolve()), COMPILED_OUT, "--rev", revision, "-o", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if fetched.returncode != 0 or not target.is_file():
            last = (fetched.stderr.strip().splitlines() or ["no output"])[-1]
            raise FileNotFoundError(f"not in the DVC cache nor fetched from the remote ({last})")
        return target.read_bytes()


def find_champion(root: Path = Path()) -> Champion | None:
    """The newest published model whose gate passed, with its model when it can be had; None
    when history holds none (no git, or no model has passed yet)."""
    for revision, metrics in _published_metrics(root):
        if not _passed(metrics):
            continue
        recorded = float(metrics["roc_auc"])
        test_md5 = metrics.get("test_file_md5")
        md5 = _locked_md5(revision, root)
        if md5 is None:
            return Champion(revision, recorded, test_md5, None, "its dvc.lock names no model.npz")
        try:
            content = _fetch_compiled(revision, md5, root)
            if hashlib.md5(content, usedforsecurity=False).hexdigest() != md5:
                raise FileNotFoundError(f"the fetched file's md5 is not {md5}")
            model = CompiledModel.load(Path(f"{revision[:12]}:{COMPILED_OUT}"), content)
        except (FileNotFoundError, OSError, CompiledModelError) as error:
            return Champion(revision, recorded, test_md5, None, str(error))
        return Champion(revision, recorded, test_md5, model)
    return None
