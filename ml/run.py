"""`make run`: the whole job on the offline default, then serve the model.

Runs the DVC pipeline (`dvc repro`: data, validate, train, evaluate with the quality gate), pushes
data and model to the default DVC remote, prints the metrics and where the model is, and finally
serves it with the prediction service, printing a ready-to-paste curl command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ml.paths import METRICS_FILE, MODEL_DIR
from ml.progress import say

# ml.artefact's name for model.json, repeated so that reading a path imports no numpy.
METADATA_FILE = "model.json"

# The original API's seven fields, as its clients send them.
SAMPLE_REQUEST = {
    "Gender": "Male",
    "Age": 44,
    "HasDrivingLicense": 1,
    "RegionID": 28,
    "Switch": 0,
    "PastAccident": "Yes",
    "AnnualPremium": "£1,623.85 ",
}


def _dvc() -> str:
    beside_python = Path(sys.executable).with_name("dvc")
    return str(beside_python) if beside_python.exists() else (shutil.which("dvc") or "dvc")


def run(command: list[str]) -> None:
    say("run", "$ " + " ".join(command))
    # The commands are this module's own fixed lists, never user input.
    completed = subprocess.run(command, check=False)  # noqa: S603
    if completed.returncode != 0:
        sys.exit(f"run: `{' '.join(command)}` failed with exit code {completed.returncode}")


def main() -> None:
    # Stages run `python -m ml...`: make that this environment's python.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    run([_dvc(), "repro"])
    run([_dvc(), "push"])
    metrics = json.loads(METRICS_FILE.read_text())
    metadata = json.loads((MODEL_DIR / METADATA_FILE).read_text())
    say("run", f"model {metadata['version']} in {MODEL_DIR}/ (card: {MODEL_DIR}/MODEL_CARD.md)")
    for key in ("roc_auc", "best_possible_roc_auc", "pr_auc", "f1", "threshold"):
        if key in metrics:
            say("run", f"  {key:<22} {metrics[key]:.4f}")
    say("run", "metrics: reports/metrics.json, plots: reports/figures/*.png, `dvc plots show`")
    serve(MODEL_DIR)


def serve(model_dir: Path) -> None:
    """Replace this process with the prediction service, after printing how to call it."""
    os.environ.setdefault("PREDICT_BUY_MODEL_DIR", str(model_dir))
    host = os.environ.setdefault("PREDICT_BUY_HOST", "127.0.0.1")
    port = os.environ.setdefault("PREDICT_BUY_PORT", "8000")
    body = json.dumps(SAMPLE_REQUEST, ensure_ascii=False)
    say("run", f"serving the model on http://{host}:{port} (docs: /docs); stop with Ctrl-C")
    say("run", f"try: curl -s http://{host}:{port}/predict -H 'Content-Type: application/json' "
               f"-d '{body}'")  # fmt: skip
    os.execv(sys.executable, [sys.executable, "-m", "service"])  # noqa: S606 -- becomes the server


if __name__ == "__main__":
    main()
