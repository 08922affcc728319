"""Benchmark `predict-buy score` against `pandas.read_csv` alone, side by side, and its memory.

On the 380,000-row raw file (the synthetic generator's, dirt included) it measures, alternately
and several times, `pandas.read_csv(file)` alone and the whole scorer (read, contract cleaning,
verified model, CSV output with rejects), and prints the median rows/s of each and their ratio
(target: the scorer at least 0.5x read_csv). Then it scores files of 1x, 4x and 16x that size,
each in a fresh process, and prints each process's peak memory (target: flat, at most 1.25x from
1x to 16x). Last, `predict-buy drift`'s reading and cleaning of the same file, for the record.

Usage: python scripts/bench_score.py [--model-dir models] [--rows 380000] [--rounds 5]
Exit status 1 if a target is missed, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ml.data import generate_dataset
from ml.drift import read_sample
from ml.score import ScoreError, load_model, score_file

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5
TARGET_MEMORY_GROWTH = 1.25
SIZES = (1, 4, 16)

# The child reports its own high-water mark (VmHWM, per address space): getrusage's ru_maxrss
# would include the parent's memory at fork time, carried over the exec.
CHILD = """
import sys
from pathlib import Path
from ml.score import load_model, score_file
score_file(sys.argv[1], Path(sys.argv[2]), load_model(sys.argv[3]))
status = Path("/proc/self/status").read_text().splitlines()
print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def write_raw(path: Path, rows: int, copies: int = 1) -> None:
    frame, _ = generate_dataset(rows, seed=2026)
    frame.to_csv(path, index=False)
    with path.open("a") as handle:
        body = frame.to_csv(index=False, header=False)
        for _ in range(copies - 1):
            handle.write(body)


def peak_memory_mib(source: Path, output: Path, model_dir: Path) -> float:
    """Peak resident memory of a fresh process that scores `source`."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(  # noqa: S603 -- fixed arguments: this interpreter and our paths
        [sys.executable, "-c", CHILD, str(source), str(output), str(model_dir)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"scoring {source} in a child process failed: {completed.stderr}")
    return int(completed.stdout.split()[-1]) / 1024  # kB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=int, default=380_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    try:
        model = load_model(arguments.model_dir)
    except ScoreError as error:
        print(f"bench_score: {error}", file=sys.stderr)
        return 2
    missed = []
    with tempfile.TemporaryDirectory(prefix="bench-score-") as scratch:
        folder = Path(scratch)
        raw = folder / "raw.csv"
        write_raw(raw, arguments.rows)
        size_mb = raw.stat().st_size / 1e6
        print(f"== predict-buy score on {arguments.rows:,} raw rows ({size_mb:.1f} MB), "
              f"{arguments.rounds} alternating rounds")  # fmt: skip
        read_s, score_s, explain_s, read_cpu, score_cpu = [], [], [], [], []
        for _ in range(arguments.rounds):
            started, cpu = time.perf_counter(), time.process_time()
            pd.read_csv(raw)
            read_s.append(time.perf_counter() - started)
            read_cpu.append(time.process_time() - cpu)
            # Each round writes new files, as a first run does: replacing the last round's would
            # add the time the file system takes to free 23 MB (10 to 20 ms) to the scoring.
            for old in folder.glob("scores*.csv"):
                old.unlink()
            started, cpu = time.perf_counter(), time.process_time()
            summary = score_file(str(raw), folder / "scores.csv", model)
            score_s.append(time.perf_counter() - started)
            score_cpu.append(time.process_time() - cpu)
            started = time.perf_counter()
            score_file(str(raw), folder / "explained.parquet", model, explain=True)
            explain_s.append(time.perf_counter() - started)
        rows = summary.rows
        read_rate = rows / statistics.median(read_s)
        score_rate = rows / statistics.median(score_s)
        ratio = score_rate / read_rate
        read_median, score_median = statistics.median(read_s), statistics.median(score_s)
        print(f"pandas.read_csv alone: {read_rate:,.0f} rows/s (median {read_median:.3f} s)")
        print(f"score, CSV out:        {score_rate:,.0f} rows/s (median {score_median:.3f} s); "
              f"{summary.scored:,} scored, {summary.rejected:,} rejected")  # fmt: skip
        print(f"score --explain, Parquet out: {rows / statistics.median(explain_s):,.0f} rows/s")
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(f"score / read_csv: {ratio:.2f}x (target >= {TARGET_RATIO}x): {verdict}")
        # CPU seconds (all threads) say how much work each does, whatever else runs meanwhile.
        print(f"CPU per run: read_csv {statistics.median(read_cpu):.3f} s, score "
              f"{statistics.median(score_cpu):.3f} s; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")  # fmt: skip
        if ratio < TARGET_RATIO:
            missed.append("throughput")

        print("== peak memory of one scoring process, by file size")
        peaks = []
        for copies in SIZES:
            source = folder / f"raw_{copies}x.csv"
            write_raw(source, arguments.rows, copies)
            peaks.append(peak_memory_mib(source, folder / "out.csv", arguments.model_dir))
            print(f"{copies}x ({arguments.rows * copies:,} rows, "
                  f"{source.stat().st_size / 1e6:,.0f} MB): peak {peaks[-1]:,.0f} MiB")  # fmt: skip
            source.unlink()
        growth = peaks[-1] / peaks[0]
        verdict = "met" if growth <= TARGET_MEMORY_GROWTH else "MISSED"
        print(f"growth from {SIZES[0]}x to {SIZES[-1]}x: {growth:.2f}x "
              f"(target <= {TARGET_MEMORY_GROWTH}x, flat): {verdict}")  # fmt: skip
        if growth > TARGET_MEMORY_GROWTH:
            missed.append("memory")

        print("== predict-buy drift: reading and cleaning for the comparison")
        started = time.perf_counter()
        sample = read_sample(str(raw))
        print(f"{sample.rows:,} rows read and cleaned in {time.perf_counter() - started:.2f} s")
    if missed:
        print(f"bench_score: targets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
