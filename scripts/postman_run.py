#!/usr/bin/env python3
"""Post-deploy test run: wait for a stack's serviceUrl to be ready, then run the Postman collection.

The publish and promote workflows run it after `pulumi up`, with the stack's `serviceUrl` output;
the job fails when it fails. Standard library only (plus newman, installed from its npm lock).

    python3 scripts/postman_run.py --url http://<load balancer dns> \
        --newman service/postman/node_modules/.bin/newman --summary "$GITHUB_STEP_SUMMARY"

Order: the URL must be http(s)://host with nothing after it; GET <url>/readyz must answer 200
before --deadline seconds (a new load balancer's DNS name takes a minute or two to resolve);
then newman runs every request of service/postman/ with baseUrl=<url> and --bail.
Exit status: 0 when every assertion passed, 1 when the service never got ready or newman failed
(the reason is printed), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
COLLECTION: Final = ROOT / "service" / "postman" / "predict_buy_app.postman_collection.json"
NEWMAN: Final = ROOT / "service" / "postman" / "node_modules" / ".bin" / "newman"
_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
REQUEST_TIMEOUT_SECONDS: Final = 5.0


class PostmanRunError(Exception):
    """The service never became ready, or the collection failed against it."""


def wait_until_ready(url: str, deadline_seconds: float, interval_seconds: float) -> int:
    """Poll GET <url>/readyz until it answers 200; return the attempts it took."""
    readyz = f"{url}/readyz"
    give_up = time.monotonic() + deadline_seconds
    attempts = 0
    last = "no answer yet"
    while True:
        attempts += 1
        try:
            with urllib.request.urlopen(readyz, timeout=REQUEST_TIMEOUT_SECONDS) as answer:  # noqa: S310 (http(s) only, checked above)
                if answer.status == 200:
                    return attempts
                last = f"status {answer.status}"
        except urllib.error.HTTPError as error:
            last = f"status {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
        if time.monotonic() + interval_seconds > give_up:
            raise PostmanRunError(
                f"{readyz} did not answer 200 within {deadline_seconds:.0f}s "
                f"({attempts} attempts; last: {last})"
            )
        time.sleep(interval_seconds)  # the poll interval of a bounded wait for readiness


def run_collection(
    url: str, newman: Path, collection: Path, report: Path, timeout: float = 600.0
) -> dict[str, int]:
    """Run newman on the collection against `url` (its JSON report into `report`), at most
    `timeout` seconds; return its assertion counts, PostmanRunError unless all passed."""
    if not newman.is_file():
        raise PostmanRunError(
            f"newman not found at {newman}: install it with "
            "`npm ci --prefix service/postman --ignore-scripts`"
        )
    done = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
        [
            str(newman),
            "run",
            str(collection),
            "--env-var",
            f"baseUrl={url}",
            "--bail",
            "--disable-unicode",
            "--timeout-request",
            "10000",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
        ],
        check=False,
        timeout=timeout,
    )
    stats = {"total": 0, "failed": 0}
    if report.is_file():
        assertions = json.loads(report.read_text())["run"]["stats"]["assertions"]
        stats = {"total": int(assertions["total"]), "failed": int(assertions["failed"])}
    if done.returncode != 0 or stats["failed"] or not stats["total"]:
        raise PostmanRunError(
            f"the Postman collection failed against {url}: newman exited {done.returncode}, "
            f"{stats['failed']} of {stats['total']} assertions failed"
        )
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, wait for readiness, run the collection, write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the stack's serviceUrl output")
    parser.add_argument("--newman", type=Path, default=NEWMAN, help="the newman binary")
    parser.add_argument("--collection", type=Path, default=COLLECTION)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to get ready")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--summary", type=Path, help="append a Markdown summary here")
    args = parser.parse_args(argv)
    url = args.url.strip().rstrip("/")
    if not _BASE_URL.fullmatch(url):
        print(
            f"postman_run: --url {args.url!r} is not a service URL; expected http(s)://host "
            "(the stack's serviceUrl output; is the stack registry only?)",
            file=sys.stderr,
        )
        return 2
    try:
        attempts = wait_until_ready(url, args.deadline, args.interval)
        print(f"postman_run: {url}/readyz answered 200 after {attempts} attempt(s)")
        with tempfile.TemporaryDirectory() as scratch:
            stats = run_collection(url, args.newman, args.collection, Path(scratch) / "run.json")
    except PostmanRunError as error:
        print(f"postman_run: {error}", file=sys.stderr)
        return 1
    message = f"{stats['total']} Postman assertions passed against {url}"
    print(f"postman_run: {message}")
    if args.summary is not None:
        with args.summary.open("a") as summary:
            summary.write(f"### Postman run\n\n{message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
