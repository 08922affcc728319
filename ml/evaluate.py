"""Evaluate stage: score the test file, apply the quality gate, and publish the model.

Metrics come from probabilities (ROC AUC, PR AUC, log loss, Brier) and from the stored decision
threshold (precision, recall, F1, confusion matrix). The served form of the model (the compiled
tables, whose sha256 the train stage recorded after proving they reproduce the fitted pipeline)
is what gets scored. On synthetic data the generator's true probabilities give the best ROC AUC
any model could reach.

The quality gate fails the stage when ROC AUC is below `evaluate.min_roc_auc`, or more than
`evaluate.max_auc_drop` below the champion: the last published model that passed the gate, fetched
from the revision it was published at and re-scored on the same test file (ml/champion.py). Only
a model that passes gets models/model.json, the metadata the service and the image build require.
To accept a model below the gate anyway, set PREDICT_BUY_ACCEPT_BELOW_GATE to the reason; it is
recorded in the metrics and the model card.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from ml.artefact import (
    METADATA_FILE,
    ArtefactError,
    ArtefactFile,
    ModelMetadata,
    TrainingData,
    md5_of,
    write_atomic,
    write_metadata,
)
from ml.champion import Champion, find_champion
from ml.compiled import CompiledModel
from ml.contract import ID_COLUMN, describe
from ml.explain import (
    IMPORTANCE_FIGURE,
    TERMS_DIR,
    global_importance,
    pyplot,
    term_figure_name,
    write_importance_figure,
    write_term_figures,
)
from ml.features import RawFeatureCleaner, read_validated
from ml.params import EvaluateParams, load_params
from ml.paths import (
    METRICS,
    METRICS_FILE,
    MODEL_DIR,
    RAW_DIR,
    REPORTS_DIR,
    SOURCE_FILE,
    TEST_FILE,
    TRAINING_RECORD,
    TRUTH_FILE,
    VALIDATED_DIR,
    VALIDATION_REPORT,
)
from ml.progress import say, skip_exit_collection, step

__all__ = ["METRICS", "METRICS_FILE", "REPORTS_DIR"]  # re-exported: other modules' names
PLOTS: Final = "plots"
FIGURES: Final = "figures"
MODEL_CARD: Final = "MODEL_CARD.md"
# Where the model card (in models/) finds the figures (in reports/figures/).
FIGURES_LINK: Final = "../reports/figures"
# Everything evaluate found, sentences included (why the gate failed, how the champion was
# compared, where the data came from); metrics.json holds its numbers.
EVALUATION: Final = "evaluation.json"
OVERRIDE_ENV: Final = "PREDICT_BUY_ACCEPT_BELOW_GATE"
CURVE_POINTS: Final = 400


class GateError(RuntimeError):
    """The model failed the quality gate; the message says which rule and by how much."""


class EvaluationError(RuntimeError):
    """The artefacts to evaluate are missing, corrupt or disagree with each other."""


@dataclass(frozen=True)
class GateResult:
    passed: bool
    overridden_because: str | None
    reasons: list[str]
    champion_roc_auc: float | None
    # How the champion was compared: re-scored on this test file, its recorded score on a test
    # file with the same md5, or not at all (and why).
    champion_comparison: str = "no champion"


def compute_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float) -> dict:
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    return {
        "roc_auc": float(roc_auc_score(y_true, probability)),
        "pr_auc": float(average_precision_score(y_true, probability)),
        "log_loss": float(log_loss(y_true, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, probability)),
        "threshold": float(threshold),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "positive_rate": float(np.mean(y_true)),
        "rows": len(y_true),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def best_possible_auc(test: pd.DataFrame, labels: np.ndarray, truth_file: Path) -> float | None:
    """ROC AUC of the generator's true probabilities on the test rows (synthetic data only)."""
    if not truth_file.is_file():
        return None
    truth = pd.read_csv(truth_file, dtype={ID_COLUMN: str})
    lookup = dict(zip(truth[ID_COLUMN], truth["true_probability"], strict=True))
    probability = test[ID_COLUMN].astype(str).map(lookup)
    if probability.isna().any():
        return None  # the truth belongs to another dataset
    return float(roc_auc_score(labels, probability.to_numpy(dtype=float)))


def compare_with_champion(
    champion: Champion | None, matrix: np.ndarray, labels: np.ndarray, test_md5: str
) -> tuple[float | None, str]:
    """The champion's ROC AUC on this test file, and how it was obtained (or why it was not)."""
    if champion is None:
        return None, "no champion: no published model in git history has passed the gate"
    name = f"champion {champion.revision[:12]}"
    if champion.model is not None:
        score = float(roc_auc_score(labels, champion.model.predict_proba(matrix)))
        return score, f"{name} re-scored on this test file"
    if champion.test_md5 == test_md5:
        return champion.recorded_roc_auc, (
            f"{name}'s recorded ROC AUC, measured on this same test file (md5 {test_md5}); its "
            f"model could not be fetched: {champion.missing_because}"
        )
    return None, (
        f"not compared: {name}'s model could not be fetched ({champion.missing_because}) and its "
        "recorded ROC AUC was measured on another test file"
    )


def apply_gate(
    roc_auc: float,
    params: EvaluateParams,
    champion: float | None,
    comparison: str | None = None,
) -> GateResult:
    """The gate's verdict: the minimum, and the largest allowed drop below the champion."""
    reasons = []
    if roc_auc < params.min_roc_auc:
        reasons.append(f"ROC AUC {roc_auc:.4f} is below the minimum {params.min_roc_auc:.4f}")
    if champion is not None and roc_auc < champion - params.max_auc_drop:
        reasons.append(
            f"ROC AUC {roc_auc:.4f} is more than {params.max_auc_drop:.4f} below the champion's "
            f"{champion:.4f}"
        )
    override = os.environ.get(OVERRIDE_ENV, "").strip() or None
    return GateResult(
        not reasons,
        override if reasons else None,
        reasons,
        champion,
        comparison or ("champion's ROC AUC given" if champion is not None else "no champion"),
    )


def _downsample(*columns: np.ndarray) -> list[np.ndarray]:
    keep = np.unique(np.linspace(0, len(columns[0]) - 1, CURVE_POINTS).round().astype(int))
    return [c[keep] for c in columns]


def _calibration_bins(
    y_true: np.ndarray, probability: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile bins of the probabilities: (mean predicted, observed rate, rows) per bin."""
    edges = np.unique(np.quantile(probability, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges[1:-1], probability, side="right"), 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    filled = counts > 0
    predicted = np.bincount(which, probability, len(edges) - 1)[filled] / counts[filled]
    observed = np.bincount(which, y_true.astype(float), len(edges) - 1)[filled] / counts[filled]
    return predicted, observed, counts[filled]


class Aside:
    """Work running in another process (see `aside`); `wait` returns when it is done."""

    def __init__(self, name: str, future: Future[object] | None) -> None:
        self._name, self._future = name, future

    def wait(self) -> None:
        """Wait for the work; raise its exception, or EvaluationError if its process died."""
        if self._future is None:
            return
        try:
            self._future.result()
        except BrokenProcessPool as error:
            raise EvaluationError(f"{self._name} died in its process: {error}") from error


@contextmanager
def aside(function: Callable[..., object], *arguments: object) -> Iterator[Aside]:
    """Run `function(*arguments)` in a forked process while the `with` body runs here, and wait
    for it on leaving (or earlier, with `wait`); its exception is raised here. Where processes
    are not forked (not Linux), it runs here first.

    Enter it before starting threads (a `step`'s heartbeat, say): a forked child holds a copy of
    every lock, and one that another thread held would never be released there. Matplotlib is
    imported before forking, so that the two processes do not both import it (or both build its
    font cache).
    """
    name = getattr(function, "__name__", "the work set aside")
    if sys.platform != "linux":
        function(*arguments)
        yield Aside(name, None)
        return
    pyplot()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        work = Aside(name, pool.submit(function, *arguments))
        try:
            yield work
        finally:
            work.wait()


def write_plots(
    y_true: np.ndarray,
    probability: np.ndarray,
    params: EvaluateParams,
    reports_dir: Path,
    threshold: float | None = None,
) -> None:
    """DVC plot data (CSV) and the same curves as PNG figures.

    ROC and PR figures carry their AUC and average precision in the legend; the PR figure also
    the base rate (a model that ranks at random) and the operating point at the decision
    threshold; the calibration figure the number of rows in each bin.
    """
    plt = pyplot()
    fpr, tpr, _ = roc_curve(y_true, probability)
    precision, recall, _ = precision_recall_curve(y_true, probability)
    predicted, observed, counts = _calibration_bins(y_true, probability, params.calibration_bins)
    roc_auc = float(roc_auc_score(y_true, probability))
    average_precision = float(average_precision_score(y_true, probability))
    base_rate = float(np.mean(y_true))
    curves = {
        "roc": ("fpr", "tpr", *_downsample(fpr, tpr), "ROC curve", f"model (AUC {roc_auc:.3f})"),
        "precision_recall": ("recall", "precision", *_downsample(recall, precision), "PR curve",
                             f"model (AP {average_precision:.3f})"),
        "calibration": ("predicted", "observed", predicted, observed, "Calibration",
                        f"model ({len(counts)} quantile bins)"),
    }  # fmt: skip
    labels = {
        "fpr": "false positive rate",
        "tpr": "true positive rate",
        "recall": "recall",
        "precision": "precision",
        "predicted": "mean predicted probability",
        "observed": "observed share of buyers",
    }
    for name, (x_name, y_name, x, y, title, label) in curves.items():
        columns = {x_name: np.round(x, 6), y_name: np.round(y, 6)}
        if name == "calibration":
            columns["rows"] = counts
        write_atomic(reports_dir / PLOTS / f"{name}.csv", pd.DataFrame(columns).to_csv(index=False))
        if name == "calibration":
            figure, (axes, count_axes) = plt.subplots(
                2, 1, figsize=(4.8, 6.4), height_ratios=(3, 1.3)
            )
            bars = count_axes.bar(range(1, len(counts) + 1), counts, color="tab:blue")
            count_axes.bar_label(bars, labels=[f"{n:,}" for n in counts], fontsize=6)
            count_axes.set(xlabel="bin (by predicted probability, low to high)", ylabel="rows",
                           xticks=range(1, len(counts) + 1))  # fmt: skip
            count_axes.margins(y=0.25)
        else:
            figure, axes = plt.subplots(figsize=(4.8, 4.8))
        axes.plot(x, y, marker="." if name == "calibration" else None, label=label)
        if name == "roc":
            axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random (AUC 0.5)")
        elif name == "calibration":
            axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        else:
            axes.axhline(base_rate, linestyle="--", color="grey",
                         label=f"base rate {base_rate:.3f}")  # fmt: skip
            if threshold is not None:
                chosen = probability >= threshold
                tp = float(np.sum(chosen & (y_true == 1)))
                point_precision = tp / chosen.sum() if chosen.any() else 0.0
                point_recall = tp / max(float(np.sum(y_true == 1)), 1.0)
                axes.plot([point_recall], [point_precision], "o", color="tab:red",
                          label=f"threshold {threshold:.3f}: P {point_precision:.2f}, "
                                f"R {point_recall:.2f}")  # fmt: skip
        axes.set(xlabel=labels[x_name], ylabel=labels[y_name], title=title, xlim=(0, 1),
                 ylim=(0, 1))  # fmt: skip
        axes.legend(loc="lower right" if name != "precision_recall" else "upper right",
                    fontsize="small")  # fmt: skip
        figure.tight_layout()
        figures = reports_dir / FIGURES
        figures.mkdir(parents=True, exist_ok=True)
        staged = figures / f".{name}.png.tmp"
        # No creation date in the file: the same model gives byte-identical figures.
        figure.savefig(staged, format="png", dpi=100, metadata={"Software": None})
        plt.close(figure)
        staged.replace(figures / f"{name}.png")


def explanation_section(metadata: ModelMetadata, figures_link: str) -> list[str]:
    """The model card's global importance table and links to each group's term figure."""
    explanation = metadata.explanation
    if explanation is None:
        return []
    lines = [
        "## Why it decides",
        "The model's log-odds are a base value plus one term per feature group, so each group's",
        "contribution to a prediction is exact (`explain=true` on /predict, `predict-buy score",
        f"--explain`). Base value (every input unknown): {explanation.base_value:.4f}. Importance:",
        f"mean |term - its mean| on {explanation.rows:,} test rows "
        f"([figure]({figures_link}/{IMPORTANCE_FIGURE})).",
        "",
        "| feature group | importance (log-odds) | share | term shape |",
        "|---|---|---|---|",
    ]
    for group in explanation.groups:
        link = f"{figures_link}/{TERMS_DIR}/{term_figure_name(group.group)}"
        lines.append(
            f"| {group.group} | {group.importance:.4f} | {group.share:.1%} | [PNG]({link}) |"
        )
    return [*lines, ""]


def model_card(
    metadata: ModelMetadata, gate: GateResult, metrics: dict, figures_link: str = FIGURES_LINK
) -> str:
    m = metrics
    cm = m["confusion_matrix"]
    best = m.get("best_possible_roc_auc")
    data = m.get("data", {})
    overlap = data.get("test_overlap")
    champion = m.get("champion", {})
    synthetic = str(data.get("source", "")).startswith("synthetic")
    lines = [
        f"# Model card: predict_buy_app model {metadata.version}",
        "",
        "## Intended use",
        "Ranks existing insurance customers by their probability of buying an additional vehicle",
        "policy, to decide whom to contact. Not for pricing, underwriting or any decision about a",
        "person's eligibility; a human decides what to do with the ranking.",
        "",
        "## Model",
        "scikit-learn HistGradientBoostingClassifier behind the feature contract's cleaning step,",
        "trees constrained to feature groups "
        f"{metadata.params['interaction_groups']}; served as exact lookup tables (ml/compiled.py).",
        f"Decision threshold {metadata.threshold:.4f} (maximises F-beta, beta "
        f"{metadata.params['threshold_beta']}, on a held-out share of the training data).",
        "",
        "## Data",
        f"Source: {data['source']}.",
        f"Trained on `{metadata.training_data.path}` (md5 `{metadata.training_data.md5}`): "
        f"{metadata.training_data.rows:,} usable rows, of which the fit used "
        + (f"{data['fit_rows']:,}" if data.get("fit_rows") else "most")
        + " (the rest chose the decision threshold). "
        f"Evaluated on {m['rows']:,} test rows with {m['positive_rate']:.1%} buyers "
        f"(md5 `{m['test_file_md5']}`).",
        *(
            [
                f"Test rows also in the training file: {overlap['shared_ids']:,} by id, "
                f"{overlap['identical_rows']:,} identical rows"
                + (" (chance level)." if not overlap["shared_ids"] else ".")
            ]
            if overlap
            else ["Overlap of test and training rows: not checked (no validation report)."]
        ),
        "",
        "## Metrics on the test file",
        "| metric | value |",
        "|---|---|",
        f"| ROC AUC | {m['roc_auc']:.4f} |",
        *([f"| best possible ROC AUC (true probabilities) | {best:.4f} |"] if best else []),
        f"| PR AUC (average precision) | {m['pr_auc']:.4f} |",
        f"| log loss | {m['log_loss']:.4f} |",
        f"| Brier score | {m['brier']:.4f} |",
        f"| precision / recall / F1 at the threshold | {m['precision']:.3f} / {m['recall']:.3f}"
        f" / {m['f1']:.3f} |",
        f"| confusion matrix (tn, fp, fn, tp) | {cm['tn']}, {cm['fp']}, {cm['fn']}, {cm['tp']} |",
        "",
        *explanation_section(metadata, figures_link),
        "## Quality gate",
        "passed"
        if gate.passed
        else f"FAILED ({'; '.join(gate.reasons)}), accepted anyway: {gate.overridden_because}",
        "",
        "| | ROC AUC on this test file |",
        "|---|---|",
        f"| challenger (this model) | {m['roc_auc']:.4f} |",
        f"| champion ({champion.get('comparison', 'no champion')}) | "
        + (f"{champion['roc_auc']:.4f}" if champion.get("roc_auc") is not None else "none")
        + " |",
        "",
        "## Limits",
        *(
            [
                "- Trained and tested on synthetic rows, not on customer data: the metrics say how",
                "  well the pipeline recovers the generator's known pattern, nothing about real",
                "  customers. Train on real files before using the ranking.",
            ]
            if synthetic
            else [
                "- Trained on historical customers of one insurer: rankings for other markets or",
                "  products are not validated.",
            ]
        ),
        "- A blank input means unknown and lowers the model's certainty.",
        "- Gender is an input: check outcomes by gender before acting on the ranking.",
        "- Probabilities are calibrated on data like the training data; monitor drift.",
        "",
        "## Reproduce",
        f"Libraries: {', '.join(f'{k} {v}' for k, v in metadata.library_versions.items())}.",
        "`dvc repro` with the params recorded in models/model.json.",
        "",
    ]
    return "\n".join(lines)


def describe_source(raw_dir: Path) -> str:
    """Where the raw files came from, in words, from the data stage's SOURCE.json."""
    try:
        record = json.loads((raw_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return "unknown (no data/raw/SOURCE.json)"
    source = str(record.get("source", "unknown"))
    if source == "synthetic":
        made = record.get("synthetic") or {}
        return (
            "synthetic rows from the project's generator (ml/data.py"
            + (f", seed {made['seed']}" if "seed" in made else "")
            + "): made-up customers, not customer data"
        )
    if source.startswith("s3://"):
        return f"files fetched from {source}"
    return f"files copied from the folder {source}"


def evaluate(
    model_dir: Path,
    test_csv: Path,
    truth_file: Path,
    params: EvaluateParams,
    *,
    reports_dir: Path = REPORTS_DIR,
    champion_roc_auc: float | None = None,
    champion: Champion | None = None,
    raw_dir: Path | None = None,
) -> dict:
    """Score the test file, compare with the champion, apply the gate, write reports; publish
    model.json if it passes.

    `champion` is the model to beat (ml.champion.find_champion); `champion_roc_auc` a bare score
    to beat instead, taken as measured on this test file.
    """
    record_path = model_dir / TRAINING_RECORD
    if not record_path.is_file():
        raise EvaluationError(f"{record_path}: not found; run the train stage (`dvc repro train`)")
    record = json.loads(record_path.read_text())
    artefacts = {k: ArtefactFile.model_validate(v) for k, v in record["artefacts"].items()}
    content = {}
    for name, entry in artefacts.items():
        content[name] = (model_dir / entry.path).read_bytes()
        if hashlib.sha256(content[name]).hexdigest() != entry.sha256:
            raise EvaluationError(f"{model_dir / entry.path}: sha256 differs from {record_path}")
    compiled = CompiledModel.load(model_dir / artefacts["compiled"].path, content["compiled"])

    with step("evaluate", f"scoring the served model on {test_csv}"):
        test, features, labels = read_validated(test_csv)
        matrix = RawFeatureCleaner().transform(features)
        probability = compiled.predict_proba(matrix)
        metrics = compute_metrics(labels, probability, record["threshold"])
    test_md5 = md5_of(test_csv)
    metrics["test_file_md5"] = test_md5
    best = best_possible_auc(test, labels, truth_file)
    if best is not None:
        metrics["best_possible_roc_auc"] = best
        metrics["gap_to_best_roc_auc"] = best - metrics["roc_auc"]
    if champion is None and champion_roc_auc is not None:
        champion = Champion("given", champion_roc_auc, test_md5, None, "a bare ROC AUC was given")
    champion_score, comparison = compare_with_champion(champion, matrix, labels, test_md5)
    say("evaluate", f"challenger ROC AUC {metrics['roc_auc']:.4f}; "
        + (f"champion {champion_score:.4f} ({comparison})" if champion_score is not None
           else comparison))  # fmt: skip
    gate = apply_gate(metrics["roc_auc"], params, champion_score, comparison)
    metrics["champion"] = {
        "revision": champion.revision if champion else None,
        "roc_auc": champion_score,
        "recorded_roc_auc": champion.recorded_roc_auc if champion else None,
        "comparison": comparison,
    }
    metrics["gate"] = {
        "passed": gate.passed,
        "reasons": gate.reasons,
        "overridden_because": gate.overridden_because,
        "min_roc_auc": params.min_roc_auc,
        "champion_roc_auc": gate.champion_roc_auc,
        "max_auc_drop": params.max_auc_drop,
    }
    source = describe_source(raw_dir or truth_file.parent)
    metrics["data"] = {
        "source": source,
        "training_rows": record["training_data"]["rows"],
        "fit_rows": record.get("fit_rows"),
        "test_rows": len(labels),
        "test_overlap": _test_overlap(reports_dir),
    }
    write_atomic(reports_dir / EVALUATION, json.dumps(metrics, indent=2) + "\n")
    write_atomic(reports_dir / METRICS, json.dumps(metrics_file_view(metrics), indent=2) + "\n")
    explanation = global_importance(compiled, matrix)
    # The terms' figures (the most drawing) are drawn in a second process meanwhile: two cores,
    # about half the wait. A failure there fails the stage like one here.
    with (
        aside(write_term_figures, explanation, reports_dir / FIGURES) as terms,
        step("evaluate", "drawing the ROC, PR, calibration, importance and term figures"),
    ):
        write_plots(labels, probability, params, reports_dir, threshold=record["threshold"])
        write_importance_figure(explanation, reports_dir / FIGURES)
        terms.wait()
    say("evaluate", f"ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}, "
                    f"F1 {metrics['f1']:.3f} at threshold {metrics['threshold']:.4f}"
                    + (f"; best possible ROC AUC {best:.4f}" if best else ""))  # fmt: skip
    (model_dir / METADATA_FILE).unlink(missing_ok=True)
    if not gate.passed and gate.overridden_because is None:
        raise GateError(
            "quality gate failed: " + "; ".join(gate.reasons) + f". The model is not published "
            f"(no {model_dir / METADATA_FILE}). To accept it anyway, rerun with "
            f"{OVERRIDE_ENV}='<reason>'."
        )
    summary = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    metadata = ModelMetadata(
        version=f"{record['version']}+{artefacts['compiled'].sha256[:12]}",
        created_at=record["created_at"],
        artefacts=artefacts,
        training_data=TrainingData.model_validate(record["training_data"]),
        params=record["params"],
        metrics={k: float(v) for k, v in summary.items()},
        threshold=record["threshold"],
        library_versions=record["library_versions"],
        feature_contract=describe(),
        explanation=explanation,
    )
    figures_link = Path(os.path.relpath(reports_dir / FIGURES, model_dir)).as_posix()
    write_atomic(model_dir / MODEL_CARD, model_card(metadata, gate, metrics, figures_link))
    write_metadata(model_dir, metadata)
    say("evaluate", f"quality gate {'passed' if gate.passed else 'overridden'}; model "
                    f"{metadata.version} published in {model_dir / METADATA_FILE}")  # fmt: skip
    return metrics


# Text that would widen `dvc metrics show` by hundreds of characters; it stays in evaluation.json.
_TEXT_KEYS: Final = {
    "gate": ("reasons", "overridden_because"),
    "champion": ("comparison",),
    "data": ("source",),
}


def metrics_file_view(metrics: dict) -> dict:
    """What reports/metrics.json holds: the numbers (and the test file's md5, the champion's
    revision), without the sentences, which reports/evaluation.json keeps in full."""
    view = json.loads(json.dumps(metrics))
    for section, keys in _TEXT_KEYS.items():
        for key in keys:
            view.get(section, {}).pop(key, None)
    if "gate" in view:
        view["gate"]["overridden"] = metrics["gate"].get("overridden_because") is not None
    if view.get("champion", {}).get("revision"):
        view["champion"]["revision"] = view["champion"]["revision"][:12]
    return view


def _test_overlap(reports_dir: Path) -> dict | None:
    """The validate stage's count of test rows also in the training file, if it ran here."""
    try:
        return json.loads((reports_dir / VALIDATION_REPORT.name).read_text()).get("test_overlap")
    except (OSError, ValueError):
        return None


def main() -> None:
    say("evaluate", f"start: models/ on {VALIDATED_DIR / TEST_FILE}, quality gate, publish")
    try:
        params = load_params().evaluate
        with step("evaluate", "looking for the champion in git history"):
            champion = find_champion()
        evaluate(
            MODEL_DIR,
            VALIDATED_DIR / TEST_FILE,
            RAW_DIR / TRUTH_FILE,
            params,
            champion=champion,
            raw_dir=RAW_DIR,
        )
    except (GateError, EvaluationError, ArtefactError) as error:
        sys.exit(f"evaluate: {error}")


if __name__ == "__main__":
    main()
    skip_exit_collection()
