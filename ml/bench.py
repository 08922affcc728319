"""Benchmarks of the training side (`make bench`): model quality on real data, and the whole
pipeline's time, peak memory and artefact size on 380k synthetic rows. Prints figures.

    python -m ml.bench [--shared ../shared/data] [--rows 380000] [--splits 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from ml.compile import compile_pipeline, interaction_partition
from ml.contract import FEATURE_NAMES, TARGET
from ml.params import TrainParams, load_params
from ml.train import build_pipeline
from ml.validate import validate_csv

REAL_FILES = {"cross_sell_real.csv": 0.855, "cross_sell_real_dirty.csv": 0.835}


def holdout_auc(csv: Path, params: TrainParams, seed: int = 0) -> tuple[float, float]:
    """Train on a stratified 80% of a raw file and score the other 20%. Returns the ROC AUC of
    the served (compiled) model and of a plain HistGradientBoostingClassifier on all columns."""
    rows = validate_csv(csv).clean
    features, labels = rows[list(FEATURE_NAMES)], rows[TARGET].astype(int).to_numpy()
    fit_x, test_x, fit_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    pipeline = build_pipeline(params).fit(fit_x, fit_y)
    test_matrix = pipeline[0].transform(test_x)
    compiled, _ = compile_pipeline(
        pipeline, interaction_partition(params.interaction_groups), test_matrix
    )
    baseline = HistGradientBoostingClassifier(random_state=seed)
    baseline.fit(pipeline[0].transform(fit_x), fit_y)
    return (
        float(roc_auc_score(test_y, compiled.predict_proba(test_matrix))),
        float(roc_auc_score(test_y, baseline.predict_proba(test_matrix)[:, 1])),
    )


def bench_real_data(shared: Path, params: TrainParams, splits: int) -> None:
    print("== model quality on real data (80/20 stratified splits, served model scored)")
    for name, target in REAL_FILES.items():
        path = shared / name
        if not path.is_file():
            print(f"{name}: not found under {shared}, skipped")
            continue
        ours, plain = np.array([holdout_auc(path, params, seed) for seed in range(splits)]).T
        print(
            f"{name}: ROC AUC {ours[0]:.4f} on split 0 (target >= {target}); over {splits} "
            f"splits mean {ours.mean():.4f} (min {ours.min():.4f}, max {ours.max():.4f}); "
            f"plain HistGradientBoosting mean {plain.mean():.4f}, beaten on "
            f"{int((ours > plain).sum())} of {splits} splits"
        )


# What the pipeline produced and recorded: left out of copies, which start with no champion.
PIPELINE_STATE = ("dvc.lock", "data/", "models/", "reports/")


def copy_project(destination: Path, root: Path = Path()) -> None:
    """The project's files as a fresh clone would have them (tracked and new, not ignored),
    without PIPELINE_STATE, committed to a new git repository (branch main) at destination."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        capture_output=True,
        check=True,
        cwd=root,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        relative = Path(name.decode())
        source = root / relative
        target = destination / relative
        if source.is_file() and not relative.as_posix().startswith(PIPELINE_STATE):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git = ["git", "-C", str(destination)]
    subprocess.run([*git, "init", "-q", "--initial-branch=main"], check=True)  # noqa: S603
    subprocess.run([*git, "add", "-A"], check=True)  # noqa: S603
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, *identity, "commit", "-qm", "snapshot"], check=True)  # noqa: S603


def set_rows(params_file: Path, train_rows: int, test_rows: int) -> None:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(params_file.read_text())
    document["data"]["synthetic"]["train_rows"] = train_rows
    document["data"]["synthetic"]["test_rows"] = test_rows
    with params_file.open("w") as handle:
        yaml.dump(document, handle)


def bench_pipeline(rows: int) -> None:
    print(f"== whole pipeline (`dvc repro`) on {rows:,} synthetic rows")
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        copy_project(project)
        set_rows(project / "params.yaml", int(rows * 0.8), rows - int(rows * 0.8))
        dvc = Path(sys.executable).with_name("dvc")
        environment = {**os.environ, "PATH": f"{dvc.parent}{os.pathsep}{os.environ['PATH']}"}
        started = time.perf_counter()
        subprocess.run(  # noqa: S603
            [str(dvc), "repro", "-q"], cwd=project, env=environment, check=True
        )
        elapsed = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        sizes = {p.name: p.stat().st_size for p in (project / "models").glob("model.*")}
        metrics = (project / "reports" / "metrics.json").read_text()
    m = json.loads(metrics)
    print(f"wall time {elapsed:.1f} s (target < 60 s); peak memory of one process "
          f"{peak_mib:,.0f} MiB (target < 2048 MiB)")  # fmt: skip
    artefact = sizes.get("model.skops", 0) + sizes.get("model.npz", 0)
    print(f"model artefact: {', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sizes.items())}; "
          f"skops + npz {artefact / 1e6:.2f} MB (target < 5 MB)")  # fmt: skip
    print(f"synthetic test ROC AUC {m['roc_auc']:.4f}, "
          f"best possible {m['best_possible_roc_auc']:.4f}, "
          f"gap {m['gap_to_best_roc_auc']:.4f} (target <= 0.01)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--rows", type=int, default=380_000)
    parser.add_argument("--splits", type=int, default=5)
    arguments = parser.parse_args()
    bench_real_data(arguments.shared, load_params().train, arguments.splits)
    bench_pipeline(arguments.rows)


if __name__ == "__main__":
    main()
