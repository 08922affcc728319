"""Benchmarks of the training side (`make bench`): model quality on real data against a tuned
XGBoost, and the whole pipeline's time side by side with a minimal script, its peak memory and
artefact size. Prints figures, with the machine's load beside each timing.

    python -m ml.bench [--shared ../shared/data] [--rows 380000] [--splits 5]
                       [--memory-rows 2000000] [--skip-quality]
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
# XGBoost's candidates, each fitted with early stopping on an inner split of the training part;
# the best on that inner split is scored on the holdout (the usual small tuning of a baseline).
XGB_GRID = (
    {"max_depth": 3, "learning_rate": 0.05, "min_child_weight": 5},
    {"max_depth": 5, "learning_rate": 0.05, "min_child_weight": 5},
    {"max_depth": 7, "learning_rate": 0.03, "min_child_weight": 10},
)


def load() -> str:
    """The machine's load averages, printed beside every timing."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def tuned_xgboost_auc(
    fit_x: np.ndarray, fit_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int
) -> float:
    """ROC AUC on the holdout of the XGBoost candidate that did best on an inner split."""
    from xgboost import XGBClassifier  # dev dependency, for this benchmark only

    inner_x, stop_x, inner_y, stop_y = train_test_split(
        fit_x, fit_y, test_size=0.15, stratify=fit_y, random_state=seed
    )
    best_auc, best_model = -1.0, None
    for candidate in XGB_GRID:
        model = XGBClassifier(
            n_estimators=3000,
            early_stopping_rounds=100,
            subsample=0.8,
            colsample_bytree=0.8,
            eval_metric="auc",
            tree_method="hist",
            random_state=seed,
            n_jobs=2,
            **candidate,
        )
        model.fit(inner_x, inner_y, eval_set=[(stop_x, stop_y)], verbose=False)
        auc = float(model.best_score)
        if auc > best_auc:
            best_auc, best_model = auc, model
    if best_model is None:
        raise RuntimeError("no XGBoost candidate was fitted")
    return float(roc_auc_score(test_y, best_model.predict_proba(test_x)[:, 1]))


def holdout_auc(
    csv: Path, params: TrainParams, seed: int = 0, *, xgboost: bool = False
) -> tuple[float, float, float | None]:
    """Train on a stratified 80% of a raw file and score the other 20%. Returns the ROC AUC of
    the served (compiled) model, of a plain HistGradientBoostingClassifier on all columns, and of
    a tuned XGBoost (when asked) on the same split."""
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
    fit_matrix = pipeline[0].transform(fit_x)
    baseline = HistGradientBoostingClassifier(random_state=seed)
    baseline.fit(fit_matrix, fit_y)
    xgb = tuned_xgboost_auc(fit_matrix, fit_y, test_matrix, test_y, seed) if xgboost else None
    return (
        float(roc_auc_score(test_y, compiled.predict_proba(test_matrix))),
        float(roc_auc_score(test_y, baseline.predict_proba(test_matrix)[:, 1])),
        xgb,
    )


def paired(ours: np.ndarray, other: np.ndarray) -> str:
    """Mean paired difference with its standard error, and on how many splits ours is ahead."""
    difference = ours - other
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return (
        f"{difference.mean():+.4f} (s.e. {error:.4f}; ahead on "
        f"{int((difference > 0).sum())} of {len(difference)} splits)"
    )


def bench_real_data(shared: Path, params: TrainParams, splits: int) -> None:
    print(f"== model quality on real data ({splits} stratified 80/20 splits, served model scored)")
    for name, target in REAL_FILES.items():
        path = shared / name
        if not path.is_file():
            print(f"{name}: not found under {shared}, skipped")
            continue
        started = time.perf_counter()
        results = [holdout_auc(path, params, seed, xgboost=True) for seed in range(splits)]
        ours, plain, xgb = (np.array(column, dtype=float) for column in zip(*results, strict=True))
        print(
            f"{name}: served model mean ROC AUC {ours.mean():.4f} (min {ours.min():.4f}, max "
            f"{ours.max():.4f}; split 0 {ours[0]:.4f}, target >= {target}); tuned XGBoost mean "
            f"{xgb.mean():.4f}; plain HistGradientBoosting mean {plain.mean():.4f}"
        )
        print(f"  served - tuned XGBoost: {paired(ours, xgb)}")
        print(f"  served - plain HistGradientBoosting: {paired(ours, plain)}")
        print(f"  ({time.perf_counter() - started:.0f} s, {load()})")


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


def _environment() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # as `make` runs it: bytecode kept
    return environment


def _timed(command: list[str], project: Path) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 -- this module's own fixed commands
        command, cwd=project, env=_environment(), check=True, capture_output=True, text=True
    )
    return time.perf_counter() - started, completed.stdout + completed.stderr


def _peak_mib() -> float:
    # The largest resident set of any process this one has waited for (the stages included).
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_pipeline(rows: int) -> None:
    """`dvc repro` side by side with the minimal script, from the same raw files and from scratch.

    The minimal script starts from the generated raw files, so the like-for-like figure is the
    pipeline starting from them too (the data stage up to date, every later stage run); the run
    from scratch, which generates the files as well, is printed beside it.
    """
    print(f"== whole pipeline (`dvc repro`) on {rows:,} synthetic rows, beside a minimal script")
    dvc = str(Path(sys.executable).with_name("dvc"))
    minimal = [sys.executable, "-m", "ml.minimal_baseline", "data/raw"]
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        copy_project(project)
        set_rows(project / "params.yaml", int(rows * 0.8), rows - int(rows * 0.8))
        # The raw files first, so that the minimal script can read them before the pipeline runs.
        generate, _ = _timed([dvc, "repro", "-q", "data"], project)
        before, line_before = _timed(minimal, project)
        before_load = load()
        repro, _ = _timed([dvc, "repro", "-q"], project)  # data is up to date: every later stage
        repro_load = load()
        after, _ = _timed(minimal, project)
        after_load = load()
        shutil.rmtree(project / "data" / "raw")
        scratch_repro, _ = _timed([dvc, "repro", "-q", "--force"], project)
        scratch_load = load()
        again, _ = _timed([dvc, "repro", "-q"], project)
        sizes = {p.name: p.stat().st_size for p in (project / "models").glob("model.*")}
        m = json.loads((project / "reports" / "metrics.json").read_text())
    baseline = (before + after) / 2
    print(f"minimal script: {before:.1f} s ({before_load}), {after:.1f} s ({after_load}); "
          f"{line_before.strip()}")  # fmt: skip
    print(f"dvc repro from the same raw files (every stage after data): {repro:.1f} s "
          f"({repro_load}); {repro / baseline:.2f}x the minimal script (target <= 2x)")  # fmt: skip
    print(f"dvc repro from scratch (data generated too): {scratch_repro:.1f} s ({scratch_load}); "
          f"{scratch_repro / baseline:.2f}x the minimal script (target < 30 s)")  # fmt: skip
    print(f"dvc repro with nothing changed: {again:.1f} s; data stage alone {generate:.1f} s")
    artefact = sizes.get("model.skops", 0) + sizes.get("model.npz", 0)
    files = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items()))
    print(f"model artefact: {files}; "
          f"skops + npz {artefact / 1e6:.2f} MB (target < 5 MB)")  # fmt: skip
    print(f"synthetic test ROC AUC {m['roc_auc']:.4f}, "
          f"best possible {m['best_possible_roc_auc']:.4f}, "
          f"gap {m['gap_to_best_roc_auc']:.4f} (target <= 0.01)")  # fmt: skip


def bench_memory(rows: int) -> None:
    """Peak resident memory of the largest pipeline process on `rows` synthetic rows."""
    print(f"== peak memory of `dvc repro` on {rows:,} synthetic rows")
    dvc = str(Path(sys.executable).with_name("dvc"))
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        copy_project(project)
        set_rows(project / "params.yaml", int(rows * 0.8), rows - int(rows * 0.8))
        peaks = {}
        for stage in ("data", "validate", "train", "evaluate"):
            # Each stage in its own child, so that each one's peak is its own.
            code = (
                "import resource, subprocess, sys; "
                f"subprocess.run([{dvc!r}, 'repro', '-q', '-s', {stage!r}], check=True); "
                "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            )
            seconds, output = _timed([sys.executable, "-c", code], project)
            # The stage's progress lines (stderr) come with the output: the peak has its label.
            peak = [line.split()[1] for line in output.splitlines() if line.startswith("peak_kib ")]
            peaks[stage] = (int(peak[-1]) / 1024, seconds)
    summary = ", ".join(f"{s} {mib:,.0f} MiB ({sec:.0f} s)" for s, (mib, sec) in peaks.items())
    worst = max(mib for mib, _ in peaks.values())
    print(f"peak per stage: {summary}; largest {worst:,.0f} MiB (target < 1024 MiB; {load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--rows", type=int, default=380_000)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--memory-rows", type=int, default=2_000_000)
    parser.add_argument("--skip-quality", action="store_true", help="skip the real-data part")
    arguments = parser.parse_args()
    if not arguments.skip_quality:
        bench_real_data(arguments.shared, load_params().train, arguments.splits)
    bench_pipeline(arguments.rows)
    if arguments.memory_rows:
        bench_memory(arguments.memory_rows)


if __name__ == "__main__":
    main()
