#!/usr/bin/env python3
"""Benchmark the service image: build time, size and layers, container start to ready.

Builds service/Dockerfile from the context (the repository root, with the model in models/) as
`make image` does with buildah, on the local Debian base (built first if it is not cached; its
time is reported apart), then reports:

  * the image build time (base cached), its size, its layers, and what they add on the base,
    split into the serving venv, the code and the model (target: under 100 MB added);
  * container start to ready: `podman start` to the first 200 from GET /readyz, with
    WEB_CONCURRENCY=2, a read-only root and a tmpfs /tmp, as production runs it (median of
    --starts runs; target under 3 s); creating the container (a copy of its file system with the
    vfs driver) is reported apart;
  * the same start without the image's bytecode (PYTHONPYCACHEPREFIX pointing at an empty
    directory), which is what compiling bytecode at build time saves.

Usage: python scripts/bench_image.py [--context .] [--starts 5]
The benchmark's image and containers are removed afterwards. Exit status 1 if a target is
missed, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
import container_image as image  # the sibling script, found through the path above

ADDED_TARGET_BYTES: Final = 100_000_000
READY_TARGET_S: Final = 3.0
READY_DEADLINE_S: Final = 60.0
RUN_FLAGS: Final = (
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--read-only",
    "--tmpfs",
    "/tmp",  # noqa: S108 (the container's own tmpfs, not a host path)
    "--health-interval",
    "disable",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback http only)
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under root (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            stat = os.lstat(os.path.join(directory, name))
            if stat.st_ino not in seen and not os.path.islink(os.path.join(directory, name)):
                seen.add(stat.st_ino)
                total += stat.st_size
    return total


def breakdown(tools: image.Buildah, reference: str) -> dict[str, int]:
    """Sizes of what the Dockerfile adds, read from the image's mounted file system."""
    working = image.run(tools.buildah("from", reference), "buildah from").strip()
    try:
        mount = Path(image.run(tools.buildah("mount", working), "buildah mount").strip())
        parts = {
            "serving venv (/opt/venv)": mount / "opt" / "venv",
            "code (/app/ml, /app/service)": None,
            "model (/app/models)": mount / "app" / "models",
        }
        sizes = {name: tree_bytes(path) for name, path in parts.items() if path is not None}
        sizes["code (/app/ml, /app/service)"] = tree_bytes(mount / "app" / "ml") + tree_bytes(
            mount / "app" / "service"
        )
        return sizes
    finally:
        subprocess.run(tools.buildah("rm", working), capture_output=True, check=False)  # noqa: S603 (cleanup)


def start_to_ready(
    tools: image.Buildah, reference: str, name: str, env: Sequence[str] = ()
) -> tuple[float, float]:
    """(seconds to create the container, seconds from `podman start` to /readyz 200)."""
    port = free_port()
    environment = [item for pair in env for item in ("--env", pair)]
    started = time.monotonic()
    image.run(
        tools.podman(
            "create",
            "--name",
            name,
            *RUN_FLAGS,
            *environment,
            "--publish",
            f"127.0.0.1:{port}:8000",
            reference,
        ),
        f"podman create {name}",
    )
    created = time.monotonic() - started
    try:
        started = time.monotonic()
        image.run(tools.podman("start", name), f"podman start {name}")
        while not ready(f"http://127.0.0.1:{port}/readyz"):
            if time.monotonic() - started > READY_DEADLINE_S:
                raise image.ImageError(f"{name}: not ready within {READY_DEADLINE_S:g} s")
            time.sleep(0.01)  # poll interval, bounded by the deadline
        return created, time.monotonic() - started
    finally:
        subprocess.run(tools.podman("rm", "--force", "--time", "5", name), capture_output=True)  # noqa: S603 (cleanup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, default=Path(), help="the repository root")
    parser.add_argument("--starts", type=int, default=5, help="container starts to time")
    args = parser.parse_args(argv)
    tools = image.Buildah()
    reference = f"localhost/predict-buy-bench/predict_buy_app:{os.getpid()}"
    try:
        image.check_context(args.context)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"== service image (buildah, storage driver {tools.storage_driver}; load {load})")
        started = time.monotonic()
        cached = tools.exists(image.base_reference(image.apt_source_files()))
        base = image.build_base(tools)
        base_s = time.monotonic() - started
        print(f"base {base}: " + ("cached" if cached else f"built in {base_s:.1f} s"))
        started = time.monotonic()
        facts = image.build_with_buildah(tools, args.context.resolve(), reference, base)
        build_s = time.monotonic() - started
        try:
            base_bytes = image.inspect_with_podman(tools, base, base).size_bytes
            added = facts.size_bytes - base_bytes
            print(f"build (base cached): {build_s:.1f} s")
            print(f"image: {image.megabytes(facts.size_bytes)} in {len(facts.layers)} layers")
            for index, layer in enumerate(facts.layers):
                role = "base" if index == 0 else "added"
                print(
                    f"  layer {index} ({role}) {layer.digest[:19]}: "
                    f"{image.megabytes(layer.size_bytes)}"
                )
            print(f"added on the base: {image.megabytes(added)} (target < 100 MB)")
            for part, size in breakdown(tools, reference).items():
                print(f"  {part}: {image.megabytes(size)}")
            runs = [
                start_to_ready(tools, reference, f"bench-{os.getpid()}-{i}")
                for i in range(args.starts)
            ]
            no_pyc = [
                start_to_ready(
                    tools,
                    reference,
                    f"bench-{os.getpid()}-nopyc-{i}",
                    env=["PYTHONPYCACHEPREFIX=/tmp/no-bytecode"],
                )
                for i in range(max(1, args.starts // 2))
            ]
        finally:
            tools.remove(reference)
    except image.ImageError as error:
        print(f"bench_image: {error}", file=sys.stderr)
        return 2
    ready_s = statistics.median(r for _, r in runs)
    print(f"container create (vfs copy): median {statistics.median(c for c, _ in runs):.1f} s")
    print(
        f"start to ready, WEB_CONCURRENCY=2: median {ready_s:.2f} s, "
        f"max {max(r for _, r in runs):.2f} s over {len(runs)} starts (target < 3 s)"
    )
    print(
        f"start to ready without the image's bytecode: median "
        f"{statistics.median(r for _, r in no_pyc):.2f} s over {len(no_pyc)} starts"
    )
    missed = [
        name
        for name, ok in (
            ("added size", added < ADDED_TARGET_BYTES),
            ("start to ready", ready_s < READY_TARGET_S),
        )
        if not ok
    ]
    if missed:
        print(f"target missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
