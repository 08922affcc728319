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
from typing import TYPE_CHECKING, Final

import numpy as np

from ml.artefact import md5_of, write_atomic
from ml.contract import FEATURES_BY_NAME, ID_COLUMN, RAW_COLUMNS, TARGET
from ml.params import DataParams, SyntheticParams, load_params
from ml.paths import RAW_DIR, SOURCE_FILE, TEST_FILE, TRAIN_FILE, TRUTH_FILE
from ml.progress import say, skip_exit_collection, step

if TYPE_CHECKING:
    import pandas as pd

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
# Rows turned into text and written at a time: bounds the memory of millions of rows.
WRITE_CHUNK_ROWS: Final = 200_000


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
    draw = _draw(n_rows, seed)
    return _written(draw, slice(None)), draw["probability"]


def _draw(n_rows: int, seed: int) -> dict[str, np.ndarray]:
    """Every row's values as numbers, blank masks and true probability; text comes later, in
    slices, so that millions of rows never exist as Python strings all at once."""
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
    channel_effect = np.zeros(max(CHANNEL_EFFECT) + 1)
    channel_effect[list(CHANNEL_EFFECT)] = list(CHANNEL_EFFECT.values())
    logit += channel_effect[channel]
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
    ids = rng.permutation(n_rows) + 1
    values = {
        ID_COLUMN: ids, "Gender": male.astype(int), "Age": age, "HasDrivingLicense": licence,
        "RegionID": region, "Switch": switch, "VehicleAge": vehicle_age,
        "PastAccident": accident.astype(int), "AnnualPremium": premium,
        "SalesChannelID": channel, "DaysSinceCreated": days, TARGET: result,
        "probability": probability,
    }  # fmt: skip
    return values | {f"blank_{name}": mask for name, mask in blank.items()}


def _written(draw: dict[str, np.ndarray], rows: slice) -> pd.DataFrame:
    """The raw text of some rows of a draw, dirt included, in the raw layout."""
    # pandas only when files are generated: the data stage runs on every `dvc repro`, and
    # finding the files up to date is 0.4 s faster without importing it.
    import pandas as pd

    def written(name: str, as_float: bool) -> np.ndarray:
        # Each distinct value is formatted once (these columns hold a few dozen), then spread.
        distinct, where = np.unique(draw[name][rows], return_inverse=True)
        text = np.char.mod("%.1f" if as_float else "%d", distinct).astype(object)[where]
        if f"blank_{name}" in draw:
            text[draw[f"blank_{name}"][rows]] = ""
        return text

    def labelled(name: str) -> np.ndarray:
        labels = np.array(FEATURES_BY_NAME[name].categories, dtype=object)[draw[name][rows]]
        labels[draw[f"blank_{name}"][rows]] = ""
        return labels

    return pd.DataFrame(
        {
            ID_COLUMN: draw[ID_COLUMN][rows],
            "Gender": labelled("Gender"),
            "Age": written("Age", True),
            "HasDrivingLicense": written("HasDrivingLicense", True),
            "RegionID": written("RegionID", True),
            "Switch": written("Switch", True),
            "VehicleAge": labelled("VehicleAge"),
            "PastAccident": labelled("PastAccident"),
            "AnnualPremium": [f"£{value:,.2f} " for value in draw["AnnualPremium"][rows]],
            "SalesChannelID": draw["SalesChannelID"][rows],
            "DaysSinceCreated": draw["DaysSinceCreated"][rows],
            TARGET: draw[TARGET][rows],
        },
        columns=list(RAW_COLUMNS),
    )


def write_synthetic(dest_dir: Path, params: SyntheticParams) -> None:
    """Write train.csv, test.csv and truth.csv (the test rows' true probabilities) to dest_dir."""
    total = params.train_rows + params.test_rows
    with step("data", f"generating {total:,} synthetic rows (seed {params.seed})"):
        draw = _draw(total, params.seed)
    with step("data", f"writing {params.train_rows:,} rows to {TRAIN_FILE} and "
                      f"{params.test_rows:,} to {TEST_FILE}"):  # fmt: skip
        for name, part in (
            (TRAIN_FILE, range(0, params.train_rows)),
            (TEST_FILE, range(params.train_rows, total)),
        ):
            with (dest_dir / name).open("w", newline="") as handle:
                for start in range(part.start, part.stop, WRITE_CHUNK_ROWS):
                    rows = slice(start, min(start + WRITE_CHUNK_ROWS, part.stop))
                    _written(draw, rows).to_csv(handle, index=False, header=start == part.start)
        import pandas as pd

        truth = pd.DataFrame(
            {
                ID_COLUMN: draw[ID_COLUMN][params.train_rows :],
                "true_probability": draw["probability"][params.train_rows :],
            }
        )
        truth.to_csv(dest_dir / TRUTH_FILE, index=False, float_format="%.10g")


def _synthetic_record(params: DataParams) -> dict[str, object]:
    """What decides the synthetic files' bytes: the params and this generator's code."""
    return {
        "source": "synthetic",
        "synthetic": params.synthetic.model_dump(),
        "generator_md5": md5_of(Path(__file__)),
    }


def _unchanged(raw_dir: Path, expected: dict[str, object]) -> dict[str, str] | None:
    """The md5 of each file when raw_dir already holds exactly what `expected` would write."""
    try:
        record = json.loads((raw_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if {k: record.get(k) for k in expected} != expected:
        return None
    md5 = record.get("md5") or {}
    if sorted(md5) != sorted((TRAIN_FILE, TEST_FILE, TRUTH_FILE)):
        return None
    for name, digest in md5.items():
        if not (raw_dir / name).is_file() or md5_of(raw_dir / name) != digest:
            return None
    return md5


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
    if params.source == "synthetic":
        expected = _synthetic_record(params)
        kept = _unchanged(raw_dir, expected)
        if kept is not None:
            # Same params, same generator, same bytes on disk: regenerating would write them again.
            say("data", f"synthetic files in {raw_dir} are up to date (same params and generator, "
                        "md5 checked); kept")  # fmt: skip
            return kept
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
        record = {
            **(_synthetic_record(params) if params.source == "synthetic" else {}),
            "source": params.source,
            "md5": md5,
        }
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
    params = load_params().data
    say("data", f"start: train.csv and test.csv from {params.source} into {RAW_DIR}/")
    try:
        fetch_raw_data(params)
    except DataSourceError as error:
        sys.exit(f"data: {error}")


if __name__ == "__main__":
    main()
    skip_exit_collection()
