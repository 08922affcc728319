"""Drift stage and `predict-buy drift`: does a new batch of data still look like the training data?

Both files are raw CSVs (local or s3://), read and cleaned with the feature contract exactly as
scoring does (ml/score.py); rows that break the contract are counted, not compared. Per feature:

* the population stability index (PSI) over buckets fixed by the reference: its categories (or
  codes, the rare ones pooled) for discrete features, its deciles for numeric ones, plus a bucket
  for unknown (blank);
* a test suited to the feature's kind: chi-squared on the category counts
  (scipy.stats.chi2_contingency), two-sample Kolmogorov-Smirnov on the known values of a numeric
  feature (scipy.stats.ks_2samp);
* the share of unknown (blank) values in each file.

With a model, the distribution of predicted probabilities is compared the same way (PSI over the
reference's deciles, KS). A feature or the prediction drifts when its PSI exceeds `max_psi`, or a
missing share moves by more than `max_missing_rate_change`. The p-values are reported, not used to
decide: on hundreds of thousands of rows a test flags shifts far too small to matter, while PSI
measures how large a shift is. Outputs: drift.json, drift.html (figures inline) and drift.md (the
summary the train workflow comments on its pull request).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ml.artefact import write_atomic
from ml.contract import FEATURES, Feature, FeatureKind
from ml.params import DriftParams, load_params
from ml.paths import RAW_DIR, TRAIN_FILE
from ml.progress import say, skip_exit_collection

if TYPE_CHECKING:
    from ml.score import ScoringModel

# scipy.stats and ml.score (pandas, pyarrow) are imported where they are used: with no reference
# configured (the default) the stage only writes its "skipped" reports, and `dvc repro` pays no
# second for imports it never uses.

REPORT_DIR: Final = Path("reports/drift")
MODEL_DIR: Final = Path("models")
JSON_REPORT: Final = "drift.json"
HTML_REPORT: Final = "drift.html"
MARKDOWN_SUMMARY: Final = "drift.md"
NUMERIC_BUCKETS: Final = 10
MAX_CODES: Final = 20  # above this many codes, those rarer than RARE_SHARE are pooled
RARE_SHARE: Final = 0.005
# A bucket empty on one side would make PSI infinite; the usual floor for its share.
PSI_FLOOR: Final = 1e-4
# Exit status of `predict-buy drift`: 0 no drift, 1 drift over a threshold, 2 unusable input.
EXIT_DRIFT: Final = 1
EXIT_BAD_INPUT: Final = 2


class DriftError(ValueError):
    """A file cannot be compared (unreadable, no usable rows); the message names which and why."""


@dataclass(frozen=True)
class Sample:
    """The contract-cleaned rows of one file (NaN: unknown) and how many were refused."""

    source: str
    matrix: np.ndarray
    rejected: int

    @property
    def rows(self) -> int:
        return len(self.matrix) + self.rejected


def read_sample(source: str, endpoint_url: str | None = None) -> Sample:
    """Read and clean a raw CSV (path or s3:// URL) block by block with the feature contract."""
    from ml.score import BlockCleaner, ScoreError, local_input, read_blocks

    cleaner = BlockCleaner()
    parts, rejected = [], 0
    try:
        with local_input(source, endpoint_url) as path:
            for batch in read_blocks(path):
                block = cleaner.clean(batch)
                parts.append(block.matrix[block.usable])
                rejected += int((~block.usable).sum())
    except ScoreError as error:
        raise DriftError(str(error)) from error
    matrix = np.vstack(parts) if parts else np.empty((0, len(FEATURES)))
    if len(matrix) == 0:
        raise DriftError(f"{source}: no usable rows to compare ({rejected:,} refused)")
    return Sample(source, matrix, rejected)


def is_discrete(feature: Feature) -> bool:
    """Categories, codes and small integer ranges (0/1 flags) are compared as categories."""
    return (
        feature.kind is FeatureKind.CATEGORY or feature.nominal or 0 < len(feature.domain()) <= 10
    )


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same buckets."""
    r = np.maximum(reference / reference.sum(), PSI_FLOOR)
    c = np.maximum(current / current.sum(), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _bucket_counts(
    reference: np.ndarray,
    current: np.ndarray,
    discrete: bool,
    categories: tuple[str, ...] = (),
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bucket labels and counts of both samples: the reference's values or deciles, + unknown."""
    known_r, known_c = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if discrete:
        values = np.union1d(np.unique(known_r), np.unique(known_c))
        count_r = np.array([np.sum(known_r == v) for v in values], dtype=float)
        count_c = np.array([np.sum(known_c == v) for v in values], dtype=float)
        labels = [categories[int(v)] if categories else f"{v:g}" for v in values]
        if len(values) > MAX_CODES:
            # Many sparse codes (regions, channels) make PSI noisy: the codes rare in the
            # reference share one bucket.
            rare = count_r < RARE_SHARE * max(count_r.sum(), 1.0)
            if rare.any():
                labels = [label for label, r in zip(labels, rare, strict=True) if not r]
                labels.append("other")
                count_r = np.append(count_r[~rare], count_r[rare].sum())
                count_c = np.append(count_c[~rare], count_c[rare].sum())
    else:
        if len(known_r):
            quantiles = np.quantile(known_r, np.linspace(0, 1, NUMERIC_BUCKETS + 1))
            edges = np.unique(quantiles[1:-1])
        else:
            edges = np.array([])
        bounds = [-math.inf, *edges.tolist(), math.inf]
        labels = [f"({a:g}, {b:g}]" for a, b in itertools.pairwise(bounds)]
        count_r = np.bincount(np.searchsorted(edges, known_r), minlength=len(labels)).astype(float)
        count_c = np.bincount(np.searchsorted(edges, known_c), minlength=len(labels)).astype(float)
    unknown_r, unknown_c = float(np.isnan(reference).sum()), float(np.isnan(current).sum())
    if unknown_r or unknown_c:
        labels.append("unknown")
        count_r, count_c = np.append(count_r, unknown_r), np.append(count_c, unknown_c)
    return labels, count_r, count_c


def _chi_squared(count_r: np.ndarray, count_c: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    seen = (count_r + count_c) > 0
    table = np.vstack([count_r[seen], count_c[seen]])
    if table.shape[1] < 2:
        return 0.0, 1.0  # one value on both sides: nothing can differ
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def _ks(reference: np.ndarray, current: np.ndarray) -> tuple[float | None, float | None]:
    known_r, known_c = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if not len(known_r) or not len(known_c):
        return None, None
    from scipy import stats

    result = stats.ks_2samp(known_r, known_c)
    return float(result.statistic), float(result.pvalue)


def compare_column(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    discrete: bool,
    params: DriftParams,
    categories: tuple[str, ...] = (),
) -> dict[str, Any]:
    """PSI, the test of its kind and the missing shares of one column, with the verdict.

    `categories` names a category feature's codes in the report.
    """
    labels, count_r, count_c = _bucket_counts(reference, current, discrete, categories)
    missing_r, missing_c = float(np.isnan(reference).mean()), float(np.isnan(current).mean())
    if discrete:
        test, (statistic, p_value) = "chi-squared", _chi_squared(count_r, count_c)
    else:
        test, (statistic, p_value) = "kolmogorov-smirnov", _ks(reference, current)
    value = psi(count_r, count_c)
    reasons = []
    if value > params.max_psi:
        reasons.append(f"PSI {value:.3f} > {params.max_psi:g}")
    if abs(missing_c - missing_r) > params.max_missing_rate_change:
        reasons.append(
            f"unknown share {missing_r:.1%} -> {missing_c:.1%} (moved more than "
            f"{params.max_missing_rate_change:.0%})"
        )
    return {
        "name": name,
        "kind": "categorical" if discrete else "numeric",
        "psi": value,
        "test": test,
        "statistic": statistic,
        "p_value": p_value,
        "missing_reference": missing_r,
        "missing_current": missing_c,
        "drifted": bool(reasons),
        "reasons": reasons,
        "buckets": labels,
        "reference_share": (count_r / count_r.sum()).tolist(),
        "current_share": (count_c / count_c.sum()).tolist(),
    }


def compare(
    reference: Sample, current: Sample, params: DriftParams, model: ScoringModel | None = None
) -> dict[str, Any]:
    """The drift report of `current` against `reference` (plain data, JSON-ready)."""
    features = [
        compare_column(
            f.name, reference.matrix[:, j], current.matrix[:, j], is_discrete(f), params,
            f.categories,
        )
        for j, f in enumerate(FEATURES)
    ]  # fmt: skip
    prediction = None
    if model is not None:
        p_r = model.model.predict_proba(reference.matrix)
        p_c = model.model.predict_proba(current.matrix)
        prediction = compare_column("predicted probability", p_r, p_c, False, params)
        prediction.update(
            model_version=model.version,
            mean_reference=float(p_r.mean()),
            mean_current=float(p_c.mean()),
            positive_rate_reference=float(np.mean(p_r >= model.threshold)),
            positive_rate_current=float(np.mean(p_c >= model.threshold)),
        )
    drifted = [f["name"] for f in features if f["drifted"]]
    if prediction is not None and prediction["drifted"]:
        drifted.append(prediction["name"])
    return {
        "reference": _describe(reference),
        "current": _describe(current),
        "thresholds": {
            "max_psi": params.max_psi,
            "max_missing_rate_change": params.max_missing_rate_change,
        },
        "drifted": bool(drifted),
        "drifted_columns": drifted,
        "features": features,
        "prediction": prediction,
    }


def _describe(sample: Sample) -> dict[str, Any]:
    return {"source": sample.source, "rows": sample.rows, "usable": len(sample.matrix),
            "rejected": sample.rejected}  # fmt: skip


# -- reports ---------------------------------------------------------------------------------------
def summary_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown table (the train workflow's pull request comment)."""
    verdict = (
        f"**Drift over the thresholds** in {', '.join(report['drifted_columns'])}."
        if report["drifted"]
        else "No drift over the thresholds."
    )
    ref, cur = report["reference"], report["current"]
    lines = [
        "### Data drift: incoming batch against the training data",
        "",
        f"{verdict} Reference `{ref['source']}` ({ref['usable']:,} usable rows), current "
        f"`{cur['source']}` ({cur['usable']:,} usable rows, {cur['rejected']:,} refused by the "
        f"contract). Thresholds: PSI > {report['thresholds']['max_psi']:g}, unknown share moving "
        f"more than {report['thresholds']['max_missing_rate_change']:.0%}.",
        "",
        "| column | PSI | test | p-value | unknown (ref -> new) | drift |",
        "|---|---|---|---|---|---|",
    ]
    rows = list(report["features"])
    if report["prediction"] is not None:
        rows.append(report["prediction"])
    for row in rows:
        p_value = "n/a" if row["p_value"] is None else f"{row['p_value']:.3g}"
        lines.append(
            f"| {row['name']} | {row['psi']:.4f} | {row['test']} | {p_value} | "
            f"{row['missing_reference']:.1%} -> {row['missing_current']:.1%} | "
            f"{'**yes**: ' + '; '.join(row['reasons']) if row['drifted'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _figure(row: dict[str, Any]) -> str:
    """A bar chart of both samples' shares per bucket, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = row["buckets"]
    shown = len(buckets) if len(buckets) <= 40 else 40  # codes beyond 40 would be unreadable
    order = np.argsort(row["reference_share"])[::-1][:shown] if len(buckets) > 40 else range(shown)
    x = np.arange(shown)
    figure, axis = plt.subplots(figsize=(max(5.0, 0.28 * shown + 2), 3.2))
    axis.bar(x - 0.2, [row["reference_share"][i] for i in order], 0.4, label="reference")
    axis.bar(x + 0.2, [row["current_share"][i] for i in order], 0.4, label="current")
    axis.set_xticks(x, [buckets[i] for i in order], rotation=60, ha="right", fontsize=7)
    axis.set(
        xlabel=row["name"], ylabel="share of rows", title=f"{row['name']}: PSI {row['psi']:.3f}"
    )
    axis.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def report_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: the summary table, then one figure per column."""
    rows = list(report["features"])
    if report["prediction"] is not None:
        rows.append(report["prediction"])
    cells = []
    for row in rows:
        p_value = "n/a" if row["p_value"] is None else f"{row['p_value']:.3g}"
        verdict = "drift: " + "; ".join(row["reasons"]) if row["drifted"] else "no drift"
        cells.append(
            f"<tr class={'drift' if row['drifted'] else 'ok'}><td>{html.escape(row['name'])}</td>"
            f"<td>{row['psi']:.4f}</td><td>{row['test']}</td><td>{p_value}</td>"
            f"<td>{row['missing_reference']:.1%} &rarr; {row['missing_current']:.1%}</td>"
            f"<td>{html.escape(verdict)}</td></tr>"
        )
    figures = "".join(
        f'<figure><img alt="{html.escape(r["name"])}" src="data:image/png;base64,{_figure(r)}">'
        "</figure>"
        for r in rows
    )
    ref, cur = report["reference"], report["current"]
    title = "Drift over the thresholds" if report["drifted"] else "No drift over the thresholds"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>predict-buy drift report</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .6em;text-align:left}}
tr.drift{{background:#fdd}}figure{{display:inline-block;margin:.5em}}</style></head><body>
<h1>{title}</h1>
<p>Reference <code>{html.escape(ref["source"])}</code>: {ref["usable"]:,} usable rows
({ref["rejected"]:,} refused). Current <code>{html.escape(cur["source"])}</code>:
{cur["usable"]:,} usable rows ({cur["rejected"]:,} refused). A column drifts when its PSI exceeds
{report["thresholds"]["max_psi"]:g} or its unknown share moves by more than
{report["thresholds"]["max_missing_rate_change"]:.0%}; p-values are shown, not used to decide.</p>
<table><tr><th>column</th><th>PSI</th><th>test</th><th>p-value</th><th>unknown</th>
<th>verdict</th></tr>{"".join(cells)}</table>
{figures}
</body></html>
"""


def write_reports(report: dict[str, Any], out_dir: Path) -> None:
    """drift.json, drift.html and drift.md in out_dir, each written atomically."""
    write_atomic(out_dir / JSON_REPORT, json.dumps(report, indent=2) + "\n")
    write_atomic(out_dir / HTML_REPORT, report_html(report))
    write_atomic(out_dir / MARKDOWN_SUMMARY, summary_markdown(report))


def run(
    reference: str,
    current: str,
    params: DriftParams,
    out_dir: Path,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Compare the files, write the reports, return the report."""
    from ml.score import ScoreError, load_model

    model = None
    if model_dir is not None:
        try:
            model = load_model(model_dir)
        except ScoreError as error:
            raise DriftError(str(error)) from error
    report = compare(
        read_sample(reference, params.s3_endpoint_url),
        read_sample(current, params.s3_endpoint_url),
        params,
        model,
    )
    write_reports(report, out_dir)
    return report


def skipped_report(reason: str) -> dict[str, Any]:
    return {"skipped": reason, "drifted": False, "drifted_columns": [], "features": []}


def main() -> None:
    """The DVC stage: the incoming training file against `drift.reference`."""
    params = load_params().drift
    if params.reference is None:
        reason = "no reference configured (params.yaml drift.reference)"
        write_atomic(REPORT_DIR / JSON_REPORT, json.dumps(skipped_report(reason), indent=2) + "\n")
        write_atomic(REPORT_DIR / MARKDOWN_SUMMARY, f"Data drift: skipped, {reason}.\n")
        write_atomic(REPORT_DIR / HTML_REPORT, f"<!doctype html><p>Drift skipped: {reason}.</p>\n")
        say("drift", f"skipped: {reason}")
        return
    # The model in models/ is the one trained before this batch (the champion): it is read, not
    # declared as a dependency, since this stage runs before training replaces it.
    model_dir = MODEL_DIR if (MODEL_DIR / "model.json").is_file() else None
    try:
        report = run(params.reference, str(RAW_DIR / TRAIN_FILE), params, REPORT_DIR, model_dir)
    except DriftError as error:
        sys.exit(f"drift: {error}")
    say("drift", summary_markdown(report).splitlines()[2])
    if report["drifted"] and params.fail_on_drift:
        sys.exit(f"drift: over the thresholds in {report['drifted_columns']} (drift.fail_on_drift)")


if __name__ == "__main__":
    main()
    skip_exit_collection()
