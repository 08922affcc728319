"""Evaluate stage: score the test file, apply the quality gate, and publish the model.

Metrics come from probabilities (ROC AUC, PR AUC, log loss, Brier) and from the stored decision
threshold (precision, recall, F1, confusion matrix). The served form of the model (the compiled
tables) is what gets scored, after checking it agrees with the fitted pipeline. On synthetic data
the generator's true probabilities give the best ROC AUC any model could reach.

The quality gate fails the stage when ROC AUC is below `evaluate.min_roc_auc`, or more than
`evaluate.max_auc_drop` below the champion (the metrics committed at git HEAD). Only a model that
passes gets models/model.json, the metadata the service and the image build require. To accept a
model below the gate anyway, set PREDICT_BUY_ACCEPT_BELOW_GATE to the reason; it is recorded in the
metrics and the model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
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
    load_pipeline,
    write_atomic,
    write_metadata,
)
from ml.compiled import CompiledModel
from ml.contract import ID_COLUMN, describe
from ml.data import RAW_DIR, TRUTH_FILE
from ml.explain import (
    IMPORTANCE_FIGURE,
    TERMS_DIR,
    global_importance,
    term_figure_name,
    write_importance_figure,
    write_term_figures,
)
from ml.params import EvaluateParams, load_params
from ml.progress import say
from ml.train import MODEL_DIR, TRAINING_RECORD, read_validated
from ml.validate import VALIDATED_DIR

REPORTS_DIR: Final = Path("reports")
METRICS: Final = "metrics.json"
METRICS_FILE: Final = REPORTS_DIR / METRICS
PLOTS: Final = "plots"
FIGURES: Final = "figures"
MODEL_CARD: Final = "MODEL_CARD.md"
# Where the model card (in models/) finds the figures (in reports/figures/).
FIGURES_LINK: Final = "../reports/figures"
OVERRIDE_ENV: Final = "PREDICT_BUY_ACCEPT_BELOW_GATE"
AGREEMENT_TOLERANCE: Final = 1e-9
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
    probability = test[ID_COLUMN].map(lookup)
    if probability.isna().any():
        return None  # the truth belongs to another dataset
    return float(roc_auc_score(labels, probability.to_numpy(dtype=float)))


def champion_auc() -> float | None:
    """ROC AUC of the model committed at git HEAD (None outside git or before the first model)."""
    try:
        # Fixed arguments, git from PATH: nothing here comes from user input.
        shown = subprocess.run(  # noqa: S603
            ["git", "show", f"HEAD:{METRICS_FILE.as_posix()}"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if shown.returncode != 0:
        return None
    try:
        return float(json.loads(shown.stdout)["roc_auc"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def apply_gate(roc_auc: float, params: EvaluateParams, champion: float | None) -> GateResult:
    reasons = []
    if roc_auc < params.min_roc_auc:
        reasons.append(f"ROC AUC {roc_auc:.4f} is below the minimum {params.min_roc_auc:.4f}")
    if champion is not None and roc_auc < champion - params.max_auc_drop:
        reasons.append(
            f"ROC AUC {roc_auc:.4f} is more than {params.max_auc_drop:.4f} below the champion's "
            f"{champion:.4f}"
        )
    override = os.environ.get(OVERRIDE_ENV, "").strip() or None
    return GateResult(not reasons, override if reasons else None, reasons, champion)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        f"Trained on {metadata.training_data.rows:,} rows of `{metadata.training_data.path}` "
        f"(md5 `{metadata.training_data.md5}`); evaluated on {m['rows']:,} test rows with "
        f"{m['positive_rate']:.1%} buyers.",
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
        "## Limits",
        "- Trained on historical customers of one insurer: rankings for other markets or products",
        "  are not validated. A blank input means unknown and lowers the model's certainty.",
        "- Gender is an input: check outcomes by gender before acting on the ranking.",
        "- Probabilities are calibrated on data like the training data; monitor drift.",
        "",
        "## Reproduce",
        f"Libraries: {', '.join(f'{k} {v}' for k, v in metadata.library_versions.items())}.",
        "`dvc repro` with the params recorded in models/model.json.",
        "",
    ]
    return "\n".join(lines)


def evaluate(
    model_dir: Path,
    test_csv: Path,
    truth_file: Path,
    params: EvaluateParams,
    *,
    reports_dir: Path = REPORTS_DIR,
    champion_roc_auc: float | None = None,
) -> dict:
    """Score the test file, apply the gate, write reports; publish model.json if it passes."""
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
    pipeline = load_pipeline(model_dir / artefacts["pipeline"].path, content["pipeline"])
    compiled = CompiledModel.load(model_dir / artefacts["compiled"].path, content["compiled"])

    test, features, labels = read_validated(test_csv)
    matrix = pipeline[0].transform(features)
    probability = compiled.predict_proba(matrix)
    disagreement = float(np.max(np.abs(probability - pipeline.predict_proba(features)[:, 1])))
    if disagreement > AGREEMENT_TOLERANCE:
        raise EvaluationError(
            f"compiled model and pipeline disagree by {disagreement:.3g} on the test rows"
        )
    metrics = compute_metrics(labels, probability, record["threshold"])
    best = best_possible_auc(test, labels, truth_file)
    if best is not None:
        metrics["best_possible_roc_auc"] = best
        metrics["gap_to_best_roc_auc"] = best - metrics["roc_auc"]
    if champion_roc_auc is None:
        say(
            "evaluate",
            "no champion (no reports/metrics.json at git HEAD): only the minimum applies",
        )
    gate = apply_gate(metrics["roc_auc"], params, champion_roc_auc)
    metrics["gate"] = {
        "passed": gate.passed,
        "reasons": gate.reasons,
        "overridden_because": gate.overridden_because,
        "min_roc_auc": params.min_roc_auc,
        "champion_roc_auc": gate.champion_roc_auc,
        "max_auc_drop": params.max_auc_drop,
    }
    write_atomic(reports_dir / METRICS, json.dumps(metrics, indent=2) + "\n")
    write_plots(labels, probability, params, reports_dir, threshold=record["threshold"])
    explanation = global_importance(compiled, matrix)
    write_importance_figure(explanation, reports_dir / FIGURES)
    write_term_figures(explanation, reports_dir / FIGURES)
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


def main() -> None:
    try:
        evaluate(
            MODEL_DIR,
            VALIDATED_DIR / "test.csv",
            RAW_DIR / TRUTH_FILE,
            load_params().evaluate,
            champion_roc_auc=champion_auc(),
        )
    except (GateError, EvaluationError, ArtefactError) as error:
        sys.exit(f"evaluate: {error}")


if __name__ == "__main__":
    main()
