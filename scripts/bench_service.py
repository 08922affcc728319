"""Benchmark the prediction service with wrk against a no-op baseline, side by side.

Starts two real uvicorn servers (one worker each, the same server options and bounds) on free
127.0.0.1 ports: the service itself, and a no-op FastAPI app whose `POST /predict` and
`POST /predict/batch` parse and validate the same bodies with the same request models (FastAPI's
standard body parameter) and return a constant. wrk (Debian's, with a Lua script rotating through
many different valid bodies, so nothing can be cached) then measures, in back-to-back pairs whose
order swaps each round:

  * single-row throughput of the service as a fraction of the no-op's (target >= 0.90),
  * p99 latency of `POST /predict` at 16 connections (target <= 10 ms),
  * `POST /predict/batch` rows per second with 1,000-row requests, and as a fraction of the
    no-op batch endpoint's (targets >= 100,000 rows/s and >= 0.80),
  * bodies built to amplify errors (16 KB of empty rows, 4 MB of unknown keys, 7 MB of text in a
    number): time, size of the 422 (target <= 6 KiB) and growth of the server's peak memory.

Usage: python scripts/bench_service.py [--model-dir models | --synthetic-model] [--seconds 4]
Exit status 1 if a target is missed, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

from service.api.errors import MAX_ERROR_BODY_BYTES
from service.schemas import BatchRequest, PredictRequest

REPO_ROOT = Path(__file__).resolve().parent.parent
WRK = "/usr/bin/wrk"
TARGET_RATIO = 0.90
TARGET_P99_MS = 10.0
TARGET_BATCH_ROWS_PER_S = 100_000
TARGET_BATCH_RATIO = 0.80
BATCH_ROWS = 1_000


class BenchError(RuntimeError):
    """The benchmark could not run (no wrk, a server did not start, a request failed)."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p99_ms: float
    errors: int


# -- the servers ---------------------------------------------------------------------------------
def serve(kind: str, port: int, model_dir: str) -> None:
    """Run one server in this process (called in a child: `bench_service.py --serve KIND ...`)."""
    from service.__main__ import listen
    from service.__main__ import serve as serve_app
    from service.core.config import Settings
    from service.main import create_app

    settings = Settings(model_dir=Path(model_dir), host="127.0.0.1", port=port, workers=1)
    app = create_app(settings) if kind == "service" else noop_app()
    serve_app(app, settings, listen(settings.host, settings.port))


def noop_app() -> FastAPI:
    """The baseline: FastAPI validating the same body with the same model, then doing nothing."""
    app = FastAPI(strict_content_type=False)

    @app.post("/predict")
    async def predict(body: PredictRequest) -> Response:  # type: ignore[valid-type]
        return Response(b'{"predicted_class":0}', media_type="application/json")

    @app.post("/predict/batch")
    async def predict_batch(body: BatchRequest) -> Response:
        return Response(b'{"predictions":[]}', media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(kind: str, model_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """A server of `kind` on a free port: (base URL, process id)."""
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, str(port), str(model_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)  # noqa: S603 - fixed argv
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process, log)
        yield base_url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)  # polling interval while the server starts, bounded by the deadline
    raise BenchError(f"{base_url} did not answer /healthz within 30 s:\n{log.read_text()}")


def post_json(url: str, body: object) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# -- wrk -----------------------------------------------------------------------------------------
def lua_script(bodies: list[str], path: Path) -> Path:
    """A wrk script that POSTs the bodies in turn (each connection starts at a different one)."""
    literals = ",\n".join(f"  [==[{body}]==]" for body in bodies)
    path.write_text(
        "wrk.method = 'POST'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"local bodies = {{\n{literals}\n}}\n"
        "local i = math.random(#bodies)\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\n"
        "end\n"
    )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> WrkResult:
    command = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if rate is None or p99 is None:
        raise BenchError(f"could not read wrk's output:\n{out}")
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return WrkResult(float(rate.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], errors)


# -- the benchmark -------------------------------------------------------------------------------
def side_by_side(
    service_url: str, noop_url: str, script: Path, connections: int, seconds: float, rounds: int
) -> tuple[list[WrkResult], list[WrkResult]]:
    """`rounds` back-to-back pairs of runs, the pair's order swapped each round (ABBA), so that a
    drift in the machine's speed favours neither side."""
    service_runs, noop_runs = [], []
    for round_number in range(rounds):
        if round_number % 2:
            service_runs.append(run_wrk(service_url, script, connections, seconds))
            noop_runs.append(run_wrk(noop_url, script, connections, seconds))
        else:
            noop_runs.append(run_wrk(noop_url, script, connections, seconds))
            service_runs.append(run_wrk(service_url, script, connections, seconds))
    return service_runs, noop_runs


def benchmark(model_dir: Path, seconds: float, rounds: int, workdir: Path) -> dict[str, float]:
    from tests.service.model_factory import sample_requests

    singles = [json.dumps(b, ensure_ascii=False) for b in sample_requests(256, seed=1)]
    batches = [
        json.dumps({"rows": sample_requests(BATCH_ROWS, seed=100 + k)}, ensure_ascii=False)
        for k in range(8)
    ]
    single_script = lua_script(singles, workdir / "single.lua")
    batch_script = lua_script(batches, workdir / "batch.lua")
    with (
        server("service", model_dir, workdir / "service.log") as (service_url, service_pid),
        server("noop", model_dir, workdir / "noop.log") as (noop_url, _),
    ):
        # Every body is valid for both servers: a 4xx would make the comparison meaningless.
        for body in singles[:16]:
            for url in (service_url, noop_url):
                status, _ = post_json(f"{url}/predict", json.loads(body))
                if status != 200:
                    raise BenchError(f"{url}/predict answered {status} to a valid body: {_}")
        run_wrk(f"{service_url}/predict", single_script, 16, 1)  # warm-up
        run_wrk(f"{noop_url}/predict", single_script, 16, 1)
        service_runs, noop_runs = side_by_side(
            f"{service_url}/predict", f"{noop_url}/predict", single_script, 16, seconds, rounds
        )
        batch_runs, noop_batch_runs = side_by_side(
            f"{service_url}/predict/batch",
            f"{noop_url}/predict/batch",
            batch_script,
            2,
            seconds,
            rounds,
        )
        hostile = hostile_figures(service_url, service_pid)
    runs = [*service_runs, *noop_runs, *batch_runs, *noop_batch_runs]
    if errors := sum(r.errors for r in runs):
        raise BenchError(f"{errors} requests failed or were not 2xx during the benchmark")
    service_rate = statistics.median(r.requests_per_s for r in service_runs)
    noop_rate = statistics.median(r.requests_per_s for r in noop_runs)
    # The ratio of each back-to-back pair, then the median: load from other processes on the
    # machine shifts both runs of a pair alike.
    pairs = zip(service_runs, noop_runs, strict=True)
    ratios = [mine.requests_per_s / noop.requests_per_s for mine, noop in pairs]
    batch_pairs = zip(batch_runs, noop_batch_runs, strict=True)
    batch_ratios = [mine.requests_per_s / noop.requests_per_s for mine, noop in batch_pairs]
    return {
        "service_requests_per_s": round(service_rate, 1),
        "noop_requests_per_s": round(noop_rate, 1),
        "throughput_ratio": round(statistics.median(ratios), 3),
        "p99_ms_16_connections": round(statistics.median(r.p99_ms for r in service_runs), 3),
        "batch_rows_per_s": round(
            statistics.median(r.requests_per_s for r in batch_runs) * BATCH_ROWS, 1
        ),
        "noop_batch_rows_per_s": round(
            statistics.median(r.requests_per_s for r in noop_batch_runs) * BATCH_ROWS, 1
        ),
        "batch_throughput_ratio": round(statistics.median(batch_ratios), 3),
        "batch_p99_ms": round(statistics.median(r.p99_ms for r in batch_runs), 3),
        **hostile,
    }


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def hostile_figures(service_url: str, pid: int) -> dict[str, float]:
    """Time, answer size and peak-memory growth of the service for bodies built to amplify."""
    rows_of_nothing = b'{"rows":[' + b",".join([b"{}"] * 5_450) + b"]}"  # 16 KB, 38,150 errors
    keys = ",".join(f'"k{i}":0' for i in range(400_000))
    unknown_keys = f'{{"rows":[{{{keys}}}]}}'.encode()  # 4.7 MB
    long_text = json.dumps({"rows": [{"AnnualPremium": "1" * 7_000_000}]}).encode()
    figures: dict[str, float] = {}
    for name, body in (
        ("empty_rows", rows_of_nothing),
        ("unknown_keys", unknown_keys),
        ("long_text", long_text),
    ):
        peak = _peak_rss_mib(pid)
        request = urllib.request.Request(  # noqa: S310 - loopback URL built here
            f"{service_url}/predict/batch", data=body, headers={"Content-Type": "application/json"}
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
                status, content = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, content = error.code, error.read()
        seconds = time.perf_counter() - started
        if status != 422:
            raise BenchError(f"a hostile body ({name}) was answered {status}, not 422")
        figures[f"hostile_{name}_422_bytes"] = len(content)
        figures[f"hostile_{name}_seconds"] = round(seconds, 3)
        figures[f"hostile_{name}_peak_rss_growth_mib"] = round(_peak_rss_mib(pid) - peak, 1)
    return figures


def report(figures: dict[str, float]) -> bool:
    checks = [
        ("throughput vs no-op", figures["throughput_ratio"], f">= {TARGET_RATIO}", TARGET_RATIO, 1),
        ("p99 at 16 connections (ms)", figures["p99_ms_16_connections"], f"<= {TARGET_P99_MS}",
         TARGET_P99_MS, -1),
        ("batch rows/s (1,000-row requests)", figures["batch_rows_per_s"],
         f">= {TARGET_BATCH_ROWS_PER_S:,}", TARGET_BATCH_ROWS_PER_S, 1),
        ("batch throughput vs no-op", figures["batch_throughput_ratio"],
         f">= {TARGET_BATCH_RATIO}", TARGET_BATCH_RATIO, 1),
        ("largest hostile 422 (bytes)", max(v for k, v in figures.items() if k.endswith("_bytes")),
         f"<= {MAX_ERROR_BODY_BYTES:,}", MAX_ERROR_BODY_BYTES, -1),
    ]  # fmt: skip
    for name in ("empty_rows", "unknown_keys", "long_text"):
        print(
            f"hostile {name}: 422 of {figures[f'hostile_{name}_422_bytes']:,.0f} B in "
            f"{figures[f'hostile_{name}_seconds']:.3f} s, peak memory "
            f"+{figures[f'hostile_{name}_peak_rss_growth_mib']:.1f} MiB"
        )
    print(
        f"single row: service {figures['service_requests_per_s']:,.0f} req/s, "
        f"no-op {figures['noop_requests_per_s']:,.0f} req/s"
    )
    print(
        f"batch (1,000 rows): service {figures['batch_rows_per_s']:,.0f} rows/s, "
        f"no-op {figures['noop_batch_rows_per_s']:,.0f} rows/s"
    )
    passed = True
    for name, value, target, bound, direction in checks:
        ok = (value - bound) * direction >= 0
        passed &= ok
        print(f"{name:<36} {value:>12,.3f}   target {target:<10} {'ok' if ok else 'MISSED'}")
    return passed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument(
        "--synthetic-model",
        action="store_true",
        help="benchmark a hand-made model of trained size instead of --model-dir",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each wrk run")
    parser.add_argument(
        "--rounds", type=int, default=8, help="pairs of runs per endpoint, in alternating order"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--serve", nargs=3, metavar=("KIND", "PORT", "MODEL_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    if not Path(WRK).is_file():
        print(
            f"bench: {WRK} not found; install Debian's wrk (apt-get install wrk)", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model_dir
        if args.synthetic_model:
            from tests.service.model_factory import write_model_dir

            model_dir = write_model_dir(workdir / "model")
        elif not (model_dir / "model.json").is_file():
            print(
                f"bench: no model in {model_dir}/ (run `make run` first, or pass "
                "--synthetic-model)",
                file=sys.stderr,
            )
            return 2
        try:
            figures = benchmark(model_dir.resolve(), args.seconds, args.rounds, workdir)
        except BenchError as error:
            print(f"bench: {error}", file=sys.stderr)
            shutil.copytree(
                workdir, Path(tempfile.gettempdir()) / "bench-service-failed", dirs_exist_ok=True
            )
            return 2
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if report(figures) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
