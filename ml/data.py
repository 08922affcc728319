"""Data stage: bring train.csv and test.csv into data/raw, from the synthetic generator, a local
folder or s3://<bucket>/new_ML_data/, and record where they came from with their md5.

The synthetic generator writes the raw layout of the original system, dirt included, calibrated to
the real data in ../shared/data: column distributions, about 12% buyers, the label driven mainly by
Switch, PastAccident, VehicleAge, Age and SalesChannelID; premiums written as "£1,623.85 ", whole
numbers as "69.0", blanks at the rates seen in production. Each row's label is drawn from a known
probability of buying given the row as written (a blank contributes "unknown"), so that probability
is the best prediction any model could make; it is kept in truth.csv for evaluation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from ml.artefact import md5_of, write_atomic
from ml.contract import FEATURES_BY_NAME, ID_COLUMN, RAW_COLUMNS, TARGET
from ml.params import DataParams, SyntheticParams, load_params
from ml.progress import say, step

RAW_DIR: Final = Path("data/raw")
TRAIN_FILE: Final = "train.csv"
TEST_FILE: Final = "test.csv"
TRUTH_FILE: Final = "truth.csv"  # synthetic only: id, true_probability of the test rows
SOURCE_FILE: Final = "SOURCE.json"
TARGET_POSITIVE_RATE: Final = 0.122

# Share of blank cells per column, as seen in the production sample of the original system.
BLANK_RATES: Final = {
    "Gender": 0.07,
    "Age": 0.06,
    "HasDrivingLicense": 0.08,
    "RegionID": 0.09,
    "Switch": 0.48,
    "VehicleAge": 0.16,
    "PastAccident": 0.40,
}
# Channels and regions with their shares in the real data; the rest share what is left.
CHANNEL_SHARES: Final = {152: 0.353, 26: 0.209, 124: 0.195, 160: 0.058, 156: 0.028, 122: 0.026,
                         157: 0.016, 154: 0.016, 151: 0.010, 163: 0.007}  # fmt: skip
YOUNG_CHANNELS: Final = (152, 160, 151, 163)
REGION_SHARES: Final = {28: 0.278, 8: 0.089, 46: 0.052, 41: 0.047, 15: 0.035, 30: 0.032,
                        29: 0.029, 50: 0.027, 3: 0.024, 11: 0.024}  # fmt: skip
CHANNEL_EFFECT: Final = {152: -1.3, 160: -1.6, 151: -1.0, 163: -0.4, 26: 0.25, 124: 0.2,
                         156: 0.35, 157: 0.45, 154: 0.4, 122: 0.3}  # fmt: skip
MIN_PREMIUM: Final = 131.50


def _pick(rng: np.random.Generator, n: int, shares: dict[int, float], low: int, high: int):
    """Draw codes with the listed shares; the remaining share is spread evenly over low..high."""
    others = np.array([v for v in range(low, high + 1) if v not in shares])
    listed = np.array(list(shares))
    p = np.array(list(shares.values()))
    from_listed = rng.random(n) < p.sum()
    values = rng.choice(others, size=n)
    values[from_listed] = rng.choice(listed, size=int(from_listed.sum()), p=p / p.sum())
    return values


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_dataset(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Generate n_rows raw rows (all cells text, as in the CSV) and each row's true probability."""
    rng = np.random.default_rng(seed)
    channel = _pick(rng, n_rows, CHANNEL_SHARES, 1, 163)
    young = np.isin(channel, YOUNG_CHANNELS) & (rng.random(n_rows) < 0.9)
    age = np.where(
        young,
        np.clip(np.round(rng.gamma(2.0, 2.2, n_rows) + 20), 20, 45),
        np.clip(np.round(rng.normal(46, 13, n_rows)), 20, 85),
    ).astype(int)
    male = rng.random(n_rows) < np.where(age >= 30, 0.58, 0.47)
    licence = (rng.random(n_rows) < 0.998).astype(int)
    region = _pick(rng, n_rows, REGION_SHARES, 0, 52)
    under_30 = age < 30
    u = rng.random(n_rows)
    vehicle_age = np.where(
        under_30,
        np.where(u < 0.87, 0, 1),
        np.where(u < 0.09, 0, np.where(u < 0.91, 1, 2)),
    )
    switch = (rng.random(n_rows) < np.where(under_30, 0.70, 0.28)).astype(int)
    accident = rng.random(n_rows) < np.where(switch == 1, 0.03, 0.95)
    premium = np.where(
        rng.random(n_rows) < 0.17,
        MIN_PREMIUM,
        np.clip(rng.lognormal(np.log(1560), 0.33, n_rows) + 60 * (region == 28), 131.5, 27008.25),
    ).round(2)
    days = rng.integers(10, 300, n_rows)

    blank = {name: rng.random(n_rows) < rate for name, rate in BLANK_RATES.items()}

    def known(name: str) -> np.ndarray:
        return ~blank[name]

    # Log-odds of buying given the row as written: a blank cell adds nothing (unknown).
    logit = np.zeros(n_rows)
    logit += known("Switch") * np.where(switch == 1, -3.6, 0.4)
    logit += known("PastAccident") * np.where(accident, 1.5, -2.2)
    logit += known("VehicleAge") * np.select([vehicle_age == 0, vehicle_age == 1], [-0.5, 0.2], 0.6)
    logit += known("Age") * (1.0 * np.exp(-(((age - 43) / 13.0) ** 2)) - 0.45)
    logit += np.vectorize(CHANNEL_EFFECT.get)(channel, 0.0)
    both = known("Switch") & known("PastAccident") & (switch == 0) & accident
    logit += both * np.where((age >= 30) & (age <= 60), 0.35, -0.15)
    logit += known("RegionID") * np.where(region == 28, 0.15, 0.0)
    logit += known("Gender") * np.where(male, 0.08, -0.08)
    logit += known("HasDrivingLicense") * np.where(licence == 1, 0.0, -1.2)
    logit += 0.1 * (premium > 2500)
    # Choose the intercept so that about TARGET_POSITIVE_RATE of rows buy.
    low, high = -10.0, 10.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high)
            if _sigmoid(logit + middle).mean() < TARGET_POSITIVE_RATE
            else (
                low,
                middle,
            )
        )
    probability = _sigmoid(logit + (low + high) / 2)
    result = (rng.random(n_rows) < probability).astype(int)

    def written(values: np.ndarray, name: str, as_float: bool) -> np.ndarray:
        text = np.char.mod("%.1f" if as_float else "%d", values).astype(object)
        if name in blank:
            text[blank[name]] = ""
        return text

    def labelled(codes: np.ndarray, name: str) -> np.ndarray:
        labels = np.array(FEATURES_BY_NAME[name].categories, dtype=object)[codes]
        labels[blank[name]] = ""
        return labels

    frame = pd.DataFrame(
        {
            ID_COLUMN: rng.permutation(n_rows) + 1,
            "Gender": labelled(male.astype(int), "Gender"),
            "Age": written(age, "Age", True),
            "HasDrivingLicense": written(licence, "HasDrivingLicense", True),
            "RegionID": written(region, "RegionID", True),
            "Switch": written(switch, "Switch", True),
            "VehicleAge": labelled(vehicle_age, "VehicleAge"),
            "PastAccident": labelled(accident.astype(int), "PastAccident"),
            "AnnualPremium": [f"£{value:,.2f} " for value in premium],
            "SalesChannelID": channel,
            "DaysSinceCreated": days,
            TARGET: result,
        },
        columns=list(RAW_COLUMNS),
    )
    return frame, probability


def write_synthetic(dest_dir: Path, params: SyntheticParams) -> None:
    """Write train.csv, test.csv and truth.csv (the test rows' true probabilities) to dest_dir."""
    total = params.train_rows + params.test_rows
    with step("data", f"generating {total:,} synthetic rows (seed {params.seed})"):
        frame, probability = generate_dataset(total, params.seed)
    with step("data", "writing train.csv and test.csv"):
        frame.iloc[: params.train_rows].to_csv(dest_dir / TRAIN_FILE, index=False)
        test = frame.iloc[params.train_rows :]
        test.to_csv(dest_dir / TEST_FILE, index=False)
        truth = pd.DataFrame(
            {ID_COLUMN: test[ID_COLUMN], "true_probability": probability[params.train_rows :]}
        )
        truth.to_csv(dest_dir / TRUTH_FILE, index=False, float_format="%.10g")


class DataSourceError(RuntimeError):
    """The configured data source cannot be read; the message names the source and the file."""


def copy_local(source: Path, dest_dir: Path) -> None:
    for name in (TRAIN_FILE, TEST_FILE):
        origin = source / name
        if not origin.is_file():
            raise DataSourceError(
                f"data source {source}: {name} not found (expected {TRAIN_FILE} and {TEST_FILE})"
            )
        shutil.copyfile(origin, dest_dir / name)


def fetch_raw_data(params: DataParams, raw_dir: Path = RAW_DIR) -> dict[str, str]:
    """Fill raw_dir from the configured source; returns each file's md5.

    The files are gathered in a temporary folder beside raw_dir that replaces it only once all are
    complete, so a failure leaves the previous data as it was.
    """
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=raw_dir.parent, prefix=f".{raw_dir.name}."))
    try:
        if params.source == "synthetic":
            write_synthetic(staging, params.synthetic)
        elif params.source.startswith("s3://"):
            from ml.s3 import S3DataError, fetch_dataset  # boto3 only when the source is S3

            with step("data", f"downloading {TRAIN_FILE} and {TEST_FILE} from {params.source}"):
                try:
                    fetch_dataset(params.source, staging, endpoint_url=params.s3_endpoint_url)
                except S3DataError as error:
                    raise DataSourceError(str(error)) from error
        else:
            copy_local(Path(params.source), staging)
        md5 = {p.name: md5_of(p) for p in sorted(staging.iterdir()) if p.suffix == ".csv"}
        record = {"source": params.source, "md5": md5}
        write_atomic(staging / SOURCE_FILE, json.dumps(record, indent=2) + "\n")
        if raw_dir.exists():
            old = Path(tempfile.mkdtemp(dir=raw_dir.parent, prefix=f".{raw_dir.name}.old."))
            os.replace(raw_dir, old / raw_dir.name)
            os.replace(staging, raw_dir)
            shutil.rmtree(old)
        else:
            os.replace(staging, raw_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for name, digest in md5.items():
        say("data", f"{raw_dir / name}: md5 {digest}")
    return md5


def main() -> None:
    try:
        fetch_raw_data(load_params().data)
    except DataSourceError as error:
        sys.exit(f"data: {error}")


if __name__ == "__main__":
    main()
