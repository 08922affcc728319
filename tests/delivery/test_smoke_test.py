"""scripts/smoke_test.py: passes a service that answers the original API, fails every other one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml.contract import ORIGINAL_API_FIELDS
from tests.conftest import REPO_ROOT
from tests.delivery.conftest import StubService, load_script

smoke = load_script("smoke_test")
ORIGINAL_FIELDS = set(ORIGINAL_API_FIELDS)  # the contract says which fields they are


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll /readyz every 20 ms: the tests' services answer at once."""
    monkeypatch.setattr(smoke, "POLL_INTERVAL_S", 0.02)


def test_a_healthy_service_passes_once_it_is_ready(
    stub_service: StubService, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a service that is not ready for its first three polls
    stub_service.behaviour.not_ready_polls = 3
    # when
    status = smoke.main(["--url", stub_service.url, "--deadline", "30"])
    # then
    out = capsys.readouterr().out
    assert status == 0, out
    assert stub_service.behaviour.readyz_calls == 4, "polled until ready, then stopped"
    assert len(stub_service.behaviour.predictions) == len(smoke.SAMPLE_PAYLOADS)
    for payload in stub_service.behaviour.predictions:
        assert set(payload) == ORIGINAL_FIELDS, "the original clients' seven fields, no more"
    assert "predicted_class=1" in out
    assert f"smoke test of {stub_service.url} passed" in out


def test_the_samples_are_written_like_the_original_clients_wrote_them() -> None:
    # then: the pound sign, thousands separator and trailing space of the original payloads
    assert smoke.SAMPLE_PAYLOADS[0]["AnnualPremium"] == "£1,623.85 "
    assert all(set(payload) == ORIGINAL_FIELDS for payload in smoke.SAMPLE_PAYLOADS)


@pytest.mark.parametrize(
    ("predict_status", "predict_body", "expected"),
    [
        (200, {"predicted_class": 2}, "expected predicted_class in [0, 1], got 2"),
        (200, {"predicted_class": True}, "got True"),
        (200, {"prediction": 1}, "got None"),
        (200, "not json", "the answer is not JSON"),
        (422, {"detail": "AnnualPremium: not a number"}, "expected HTTP 200, got HTTP 422"),
        (500, {"detail": "boom"}, "expected HTTP 200, got HTTP 500"),
    ],
)
def test_a_wrong_prediction_answer_fails_and_says_why(
    stub_service: StubService,
    capsys: pytest.CaptureFixture[str],
    predict_status: int,
    predict_body: object,
    expected: str,
) -> None:
    # given
    stub_service.behaviour.predict_status = predict_status
    stub_service.behaviour.predict_body = predict_body
    # when
    status = smoke.main(["--url", stub_service.url, "--deadline", "10"])
    # then
    err = capsys.readouterr().err
    assert status == 1
    assert "POST /predict with sample payload #1" in err
    assert expected in err, err


def test_a_broken_health_check_fails(
    stub_service: StubService, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    stub_service.behaviour.health_status = 404
    # when
    status = smoke.main(["--url", stub_service.url, "--deadline", "10"])
    # then
    assert status == 1
    assert "GET /: expected HTTP 200, got HTTP 404" in capsys.readouterr().err


def test_a_service_that_never_gets_ready_fails_at_the_deadline(
    stub_service: StubService, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    stub_service.behaviour.not_ready_polls = 10**6
    started = time.monotonic()
    # when
    status = smoke.main(["--url", stub_service.url, "--deadline", "1"])
    # then
    elapsed = time.monotonic() - started
    assert status == 1
    assert "GET /readyz: not ready within 1 s (last answer: HTTP 503" in capsys.readouterr().err
    assert elapsed < 5, f"the deadline was 1 s, the check took {elapsed:.1f} s"
    assert not stub_service.behaviour.predictions, "no prediction before the service is ready"


def test_nothing_listening_fails_with_the_connection_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # when: port 9 on loopback (discard) has no HTTP server in a test environment
    status = smoke.main(["--url", "http://127.0.0.1:9", "--deadline", "1"])
    # then
    err = capsys.readouterr().err
    assert status == 1
    assert "not ready within 1 s (last answer: no answer:" in err


def test_an_image_is_run_on_loopback_tested_and_removed(
    stub_service: StubService,
    fake_docker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: the stand-in service plays the container published on the chosen port
    image = (
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/ce7-grp-1/nonprod/predict_buy_app@sha256:"
        + "a" * 64
    )
    summary = tmp_path / "summary.md"
    # when
    status = smoke.main(
        [
            "--image",
            image,
            "--port",
            str(stub_service.port),
            "--docker",
            str(fake_docker),
            "--summary",
            str(summary),
        ]
    )
    # then
    calls = (tmp_path / "docker-calls.txt").read_text().splitlines()
    assert status == 0, capsys.readouterr()
    assert calls[0].startswith("run --detach --name predict-buy-smoke-")
    assert calls[0].endswith(f"--publish 127.0.0.1:{stub_service.port}:8000 {image}")
    assert calls[-1].startswith("rm --force predict-buy-smoke-"), "the container is removed"
    report = summary.read_text()
    assert "### Smoke test passed" in report and image in report


def test_a_container_that_exits_fails_fast_with_its_log(
    fake_docker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: docker reports the container as stopped, and nothing answers on the port
    monkeypatch.setenv("FAKE_DOCKER_RUNNING", "false")
    started = time.monotonic()
    # when
    status = smoke.main(
        ["--image", "img@sha256:" + "b" * 64, "--port", "9", "--docker", str(fake_docker)]
    )
    # then
    err = capsys.readouterr().err
    calls = (tmp_path / "docker-calls.txt").read_text().splitlines()
    assert status == 1
    assert "the service stopped before it was ready" in err
    assert "model.skops sha256 mismatch" in err, "the container's log explains the failure"
    assert calls[-1].startswith("rm --force "), "removed even after a failure"
    assert time.monotonic() - started < 10, "no waiting for the deadline once it has stopped"


def test_a_failing_docker_run_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a docker client that refuses to run anything
    docker = tmp_path / "docker"
    docker.write_text("#!/usr/bin/env bash\necho 'pull access denied' >&2\nexit 125\n")
    docker.chmod(0o755)
    # when
    status = smoke.main(["--image", "missing:latest", "--docker", str(docker)])
    # then
    assert status == 1
    assert (
        "docker run missing:latest: exit status 125: pull access denied" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://127.0.0.1"], "--url: expected an http:// or https:// URL"),
        (["--url", "http://x", "--port", "0"], "--port: expected 1-65535"),
        (["--url", "http://x", "--deadline", "0"], "--deadline: expected a positive number"),
        ([], "one of the arguments --image --url is required"),
    ],
)
def test_bad_usage_exits_2_and_names_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # when
    with pytest.raises(SystemExit) as exit_info:
        smoke.main(args)
    # then
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
def test_the_real_service_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given: predict_buy_app serving a hand-made model, as the image runs it
    from tests.service.model_factory import write_model_dir

    model_dir = write_model_dir(tmp_path / "models")
    port = free_port()
    env = {
        **os.environ,
        "PREDICT_BUY_MODEL_DIR": str(model_dir),
        "PREDICT_BUY_PORT": str(port),
        "PREDICT_BUY_ACCESS_LOG": "false",
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # when
        status = smoke.main(["--url", f"http://127.0.0.1:{port}", "--deadline", "60"])
    finally:
        service.terminate()
        _, stderr = service.communicate(timeout=30)
    # then
    out = capsys.readouterr().out
    assert status == 0, f"{out}\nservice log:\n{stderr[-3000:]}"
    assert out.count("predicted_class=") == len(smoke.SAMPLE_PAYLOADS)
