"""The Postman collection, run for real by newman (npm, from its lock) against a live uvicorn."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.postman_run import run_collection
from tests.conftest import REPO_ROOT, require
from tests.service.conftest import LiveServer

POSTMAN = REPO_ROOT / "service" / "postman"
COLLECTION = POSTMAN / "predict_buy_app.postman_collection.json"
LOCK = POSTMAN / "package-lock.json"
STAMP = POSTMAN / "node_modules" / ".predict-buy-lock.sha256"

pytestmark = [pytest.mark.e2e]


def test_the_npm_lock_pins_newman_without_download_addresses() -> None:
    # given the lock that `npm ci` installs from
    lock = json.loads(LOCK.read_text())
    package = json.loads((POSTMAN / "package.json").read_text())
    # then newman is pinned to one exact version, hashes are recorded, addresses are not
    assert package["devDependencies"]["newman"][0].isdigit(), "pin an exact newman version"
    pinned = package["devDependencies"]["newman"]
    assert lock["packages"]["node_modules/newman"]["version"] == pinned
    entries = [v for k, v in lock["packages"].items() if k]
    assert all("integrity" in entry for entry in entries), "every package needs its hash"
    assert not any("resolved" in entry for entry in entries), "a download address is in the lock"
    assert "registry" not in LOCK.read_text(), "a registry address is in the lock"


@pytest.fixture(scope="module")
def newman() -> Path:
    """newman from `npm ci` (re-run only when the lock changed); skipped without npm."""
    npm = shutil.which("npm")
    require(npm is not None and shutil.which("node") is not None, "node and npm are not installed")
    assert npm is not None
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    binary = POSTMAN / "node_modules" / ".bin" / "newman"
    if not (binary.exists() and STAMP.is_file() and STAMP.read_text() == digest):
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=POSTMAN,
            check=True,
            timeout=300,
        )
        STAMP.write_text(digest)
    return binary


@pytest.mark.slow
def test_the_postman_collection_passes(newman: Path, server: LiveServer, tmp_path: Path) -> None:
    # given the collection and a live server
    report = tmp_path / "newman.json"
    # when newman runs every request and its tests, as the workflows run it after `pulumi up`
    stats = run_collection(server.base_url, newman, COLLECTION, report, timeout=120)
    # then every assertion passes, and every endpoint was exercised
    assert stats["failed"] == 0
    assert stats["total"] >= 40
    run = json.loads(report.read_text())["run"]
    called = {"/" + "/".join(e["item"]["request"]["url"]["path"]) for e in run["executions"]}
    every = {"/", "/healthz", "/readyz", "/predict", "/predict/batch", "/model", "/metrics"}
    assert every <= called, every - called
