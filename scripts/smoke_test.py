#!/usr/bin/env python3
"""Smoke test of a predict_buy_app image or a running service: /readyz, then the original API.

The publish workflow runs it on the image it just pushed, before the job may succeed; anyone can
run it locally the same way. Standard library only, so it runs with any Python 3.11.

    python3 scripts/smoke_test.py --image <registry>/<repo>@sha256:<digest>   # docker run, test, rm
    python3 scripts/smoke_test.py --url http://127.0.0.1:8000                 # a running service

Checks, in order: the service answers GET /readyz with 200 before a deadline (with --image, the
container must keep running meanwhile); GET / (the original health check) answers 200; every
original seven-field sample payload POSTed to /predict answers 200 with `predicted_class` 0 or 1.
Exit status: 0 when every check passed, 1 when one failed (the reason is printed), 2 for bad usage.
With --image the container is removed afterwards whatever happened, and its log is printed on
failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Payloads exactly as the original API's clients (Postman collections, curl scripts) send them:
# seven fields, the premium as text with a pound sign, thousands separator and trailing space.
SAMPLE_PAYLOADS: Final[tuple[dict[str, object], ...]] = (
    {
        "Gender": "Male",
        "Age": 44,
        "HasDrivingLicense": 1,
        "RegionID": 28,
        "Switch": 0,
        "PastAccident": "Yes",
        "AnnualPremium": "£1,623.85 ",
    },
    {
        "Gender": "Female",
        "Age": 23,
        "HasDrivingLicense": 1,
        "RegionID": 8,
        "Switch": 1,
        "PastAccident": "No",
        "AnnualPremium": "£2,630.00",
    },
    {
        "Gender": "Male",
        "Age": 61,
        "HasDrivingLicense": 1,
        "RegionID": 46,
        "Switch": 0,
        "PastAccident": "Yes",
        "AnnualPremium": "£40,454.00 ",
    },
)
ALLOWED_CLASSES: Final = (0, 1)
CONTAINER_PORT: Final = 8000
POLL_INTERVAL_S: Final = 0.5
REQUEST_TIMEOUT_S: Final = 10.0


class SmokeTestError(Exception):
    """A check failed; the message says which check, what was expected and what came back."""


@dataclass(frozen=True)
class Response:
    """What an HTTP call returned: status 0 means no answer at all (the reason is in body)."""

    status: int
    body: str


def http_call(url: str, payload: dict[str, object] | None = None) -> Response:
    """GET url, or POST payload to it as JSON; connection failures come back as status 0."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 (the caller builds http:// URLs only)
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:  # noqa: S310 (as above)
            return Response(answer.status, answer.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read().decode(errors="replace"))
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        return Response(0, f"no answer: {reason}")


def wait_until_ready(
    base_url: str, deadline_s: float, still_running: Callable[[], bool] = lambda: True
) -> float:
    """Poll GET /readyz until it answers 200; return the seconds it took.

    Fails when the deadline passes or when still_running() says the service has stopped.
    """
    started = time.monotonic()
    last = Response(0, "not called yet")
    while time.monotonic() - started < deadline_s:
        last = http_call(f"{base_url}/readyz")
        if last.status == 200:
            return time.monotonic() - started
        if not still_running():
            raise SmokeTestError(
                f"GET /readyz: the service stopped before it was ready (last answer: "
                f"{describe(last)})"
            )
        time.sleep(POLL_INTERVAL_S)
    raise SmokeTestError(
        f"GET /readyz: not ready within {deadline_s:g} s (last answer: {describe(last)})"
    )


def describe(response: Response) -> str:
    """One line for an error message: status and the start of the body."""
    body = response.body.strip().replace("\n", " ")
    body = body if len(body) <= 300 else body[:300] + "..."
    return f"HTTP {response.status}: {body}" if response.status else body


def check_health(base_url: str) -> None:
    """The original API's health check: GET / answers 200."""
    response = http_call(f"{base_url}/")
    if response.status != 200:
        raise SmokeTestError(f"GET /: expected HTTP 200, got {describe(response)}")


def check_prediction(base_url: str, index: int, payload: dict[str, object]) -> int:
    """POST one original payload to /predict; return its predicted_class (0 or 1)."""
    where = f"POST /predict with sample payload #{index}"
    response = http_call(f"{base_url}/predict", payload)
    if response.status != 200:
        raise SmokeTestError(f"{where}: expected HTTP 200, got {describe(response)}")
    try:
        answer = json.loads(response.body)
    except json.JSONDecodeError as error:
        raise SmokeTestError(
            f"{where}: the answer is not JSON ({error}): {describe(response)}"
        ) from error
    predicted = answer.get("predicted_class") if isinstance(answer, dict) else None
    # bool is an int subclass; the contract says 0 or 1, and True/False would break clients.
    if isinstance(predicted, bool) or predicted not in ALLOWED_CLASSES:
        raise SmokeTestError(
            f"{where}: expected predicted_class in {list(ALLOWED_CLASSES)}, got "
            f"{predicted!r} in {describe(response)}"
        )
    return int(predicted)


def run_checks(
    base_url: str, deadline_s: float, still_running: Callable[[], bool], report: list[str]
) -> None:
    """Every check against one service, in order; appends a line to report per passed check."""
    ready_after = wait_until_ready(base_url, deadline_s, still_running)
    report.append(f"GET /readyz: ready after {ready_after:.1f} s")
    check_health(base_url)
    report.append("GET /: 200")
    for index, payload in enumerate(SAMPLE_PAYLOADS, start=1):
        predicted = check_prediction(base_url, index, payload)
        report.append(f"POST /predict sample #{index}: predicted_class={predicted}")


class Container:
    """One `docker run -d` of the image, bound to loopback, removed by close()."""

    def __init__(self, docker: str, image: str, host_port: int) -> None:
        self.docker = docker
        self.name = f"predict-buy-smoke-{os.getpid()}"
        completed = self._docker(
            "run",
            "--detach",
            "--name",
            self.name,
            "--publish",
            f"127.0.0.1:{host_port}:{CONTAINER_PORT}",
            image,
        )
        if completed.returncode != 0:
            raise SmokeTestError(
                f"docker run {image}: exit status {completed.returncode}: "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )

    def _docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (fixed docker sub-commands, no shell)
            [self.docker, *args], capture_output=True, text=True, check=False
        )

    def is_running(self) -> bool:
        """Whether the container is still up (it may exit early, e.g. on a bad model)."""
        state = self._docker("inspect", "--format", "{{.State.Running}}", self.name)
        return state.returncode == 0 and state.stdout.strip() == "true"

    def logs(self) -> str:
        """The container's output, for the failure report."""
        completed = self._docker("logs", "--tail", "200", self.name)
        return (completed.stdout + completed.stderr).strip()

    def close(self) -> None:
        """Stop and remove the container; safe to call when it has already exited."""
        self._docker("rm", "--force", self.name)


def write_summary(path: Path, target: str, lines: Sequence[str], error: str | None) -> None:
    """Append a Markdown section (for $GITHUB_STEP_SUMMARY) with the outcome of every check."""
    outcome = f"failed: {error}" if error else "passed"
    section = [f"### Smoke test {outcome}", "", f"Target: `{target}`", ""]
    section += [f"- {line}" for line in lines]
    with path.open("a", encoding="utf-8") as summary:
        summary.write("\n".join(section) + "\n\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", help="image reference to docker run (repository@sha256:...)")
    target.add_argument("--url", help="base URL of a running service, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--port", type=int, default=CONTAINER_PORT, help="host port for --image (loopback only)"
    )
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds to wait for /readyz (default 120)"
    )
    parser.add_argument("--docker", default="docker", help="docker client to use (default docker)")
    parser.add_argument("--summary", type=Path, help="append a Markdown report to this file")
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith(("http://", "https://")):
        parser.error(f"--url: expected an http:// or https:// URL, got {args.url!r}")
    if not 0 < args.port < 65536:
        parser.error(f"--port: expected 1-65535, got {args.port}")
    if args.deadline <= 0:
        parser.error(f"--deadline: expected a positive number of seconds, got {args.deadline:g}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks against --url, or against a container of --image; 0 when all passed."""
    args = parse_args(argv)
    container: Container | None = None
    lines: list[str] = []
    error: str | None = None
    try:
        if args.image:
            container = Container(args.docker, args.image, args.port)
            base_url, still_running = f"http://127.0.0.1:{args.port}", container.is_running
        else:
            base_url, still_running = args.url.rstrip("/"), lambda: True
        run_checks(base_url, args.deadline, still_running, lines)
    except SmokeTestError as failure:
        error = str(failure)
        if container is not None:
            print(f"--- container log ({container.name}) ---\n{container.logs()}", file=sys.stderr)
    finally:
        if container is not None:
            container.close()
    target = args.image or args.url
    for line in lines:
        print(line)
    if args.summary:
        write_summary(args.summary, target, lines, error)
    if error:
        print(f"smoke test of {target} FAILED: {error}", file=sys.stderr)
        return 1
    print(f"smoke test of {target} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
