#!/usr/bin/env python3
"""Build the service image with what the machine has: a Docker engine, or buildah on a local base.

    python3 scripts/container_image.py build [--reference REF] [--engine auto|docker|buildah]
    python3 scripts/container_image.py base      # only the local Debian base (buildah machines)

`build` builds service/Dockerfile from the repository root (the context, with the model in
models/). Where `docker info` answers it runs `docker build`, on the Dockerfile's own base.
Otherwise it uses buildah (no daemon): Docker Hub may be out of reach, so unless --python-image
names a base, it first builds one from Debian's packages with mmdebstrap (Debian bookworm,
minbase, Python 3.11), reading this machine's apt sources at run time, and caches it in the
local image storage under a tag derived from every input (the recipe below and the apt sources'
text), so a second build reuses it and a changed input builds a new one. RUN steps reach PyPI
with this machine's CA bundle mounted read-only for the build only (buildah `-v`): it is in no
layer and no file. Then it prints the image reference, its id, its digest and its size.

buildah and podman use the storage driver in $STORAGE_DRIVER (default vfs, which works in any
container) and buildah the isolation in $BUILDAH_ISOLATION (default chroot). Standard library
only. Exit status: 0 built, 1 the build failed (the reason is printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DOCKERFILE: Final = Path("service/Dockerfile")
MODEL_FILES: Final = ("models/model.npz", "models/model.json")
REPOSITORY: Final = "localhost/predict_buy_app"
BASE_REPOSITORY: Final = "localhost/predict-buy-base"
SUITE: Final = "bookworm"
# What the base holds, beyond Debian's minbase: Python 3.11 with venv (the Dockerfile's build
# stage), `python` on PATH, useradd/groupadd, and what the official slim image also ships.
BASE_PACKAGES: Final = (
    "python3.11",
    "python3-venv",
    "python-is-python3",
    "passwd",
    "ca-certificates",
    "netbase",
    "tzdata",
    "usr-is-merged",
)
# As Debian's slim images: no manuals, translations or documentation beyond the licences.
BASE_DPKG_OPTIONS: Final = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
BASE_ENV: Final = (
    "LANG=C.UTF-8",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
)
APT_SOURCES: Final = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
CA_BUNDLES: Final = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Ubuntu
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # Fedora, RHEL
    Path("/etc/ssl/cert.pem"),  # Alpine, macOS
)
CA_IN_BUILD: Final = "/etc/ssl/certs/ca-certificates.crt"  # where Debian's pip looks
BUILD_TIMEOUT_S: Final = 1800


class ImageError(Exception):
    """The image could not be built or inspected; the message says which step failed and why."""


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its uncompressed digest (diff id) and size in bytes."""

    digest: str
    size_bytes: int


@dataclass(frozen=True)
class ImageFacts:
    """What `build` reports: the image's name, identity, size and layers."""

    reference: str
    engine: str
    image_id: str  # sha256 of the image's config: the same in every registry it is copied to
    digest: str  # sha256 of its manifest in local storage (a registry's may differ: compression)
    size_bytes: int
    layers: tuple[Layer, ...]
    base: str

    def summary(self) -> str:
        """The lines `build` prints."""
        lines = [
            f"image:  {self.reference}",
            f"engine: {self.engine}",
            f"id:     {self.image_id}",
            f"digest: {self.digest}",
            f"size:   {megabytes(self.size_bytes)} in {len(self.layers)} layers",
            f"base:   {self.base}",
        ]
        lines += [f"  layer {x.digest[:19]}  {megabytes(x.size_bytes)}" for x in self.layers]
        return "\n".join(lines)


def megabytes(size: int) -> str:
    """Size in MB (10^6 bytes, as docker and podman print them)."""
    return f"{size / 1e6:.1f} MB"


def version(root: Path = REPO_ROOT) -> str:
    """The project's one version (pyproject.toml)."""
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def run(command: Sequence[str], what: str, timeout: float = BUILD_TIMEOUT_S) -> str:
    """Run a command; its stdout, or ImageError naming `what` with the end of its output."""
    try:
        done = subprocess.run(  # noqa: S603 (argument lists built here, no shell)
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ImageError(f"{what}: {command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what}: no result within {timeout:g} s ({command[0]})") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-3000:]
        raise ImageError(f"{what}: {command[0]} exited with {done.returncode}:\n{output}")
    return done.stdout


def docker_answers(docker: str = "docker") -> bool:
    """Whether a Docker engine answers here (a docker CLI alone is not enough)."""
    if shutil.which(docker) is None:
        return False
    try:
        return (
            subprocess.run(  # noqa: S603 (fixed arguments)
                [docker, "info"], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


@dataclass(frozen=True)
class Buildah:
    """buildah and podman with one storage driver (and buildah with one isolation)."""

    # Read when a Buildah is made, not when the module is imported.
    storage_driver: str = field(default_factory=lambda: os.environ.get("STORAGE_DRIVER", "vfs"))
    isolation: str = field(default_factory=lambda: os.environ.get("BUILDAH_ISOLATION", "chroot"))

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", "--storage-driver", self.storage_driver, *args]

    def podman(self, *args: str) -> list[str]:
        return ["podman", "--storage-driver", self.storage_driver, *args]

    def exists(self, reference: str) -> bool:
        """Whether local storage holds an image by that name."""
        done = subprocess.run(  # noqa: S603 (argument list built here)
            self.buildah("inspect", "--type", "image", reference),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def remove(self, *references: str) -> None:
        """Remove images if present (cleanup: a missing one is no error)."""
        for reference in references:
            if self.exists(reference):
                run(self.buildah("rmi", "--force", reference), f"remove {reference}")


def apt_source_files(suite: str = SUITE, locations: Sequence[Path] = APT_SOURCES) -> list[Path]:
    """This machine's apt source files that name `suite` (read now, never stored in the repo)."""
    candidates: list[Path] = []
    for location in locations:
        if location.is_dir():
            candidates += sorted(
                p for p in location.iterdir() if p.suffix in (".list", ".sources") and p.is_file()
            )
        elif location.is_file():
            candidates.append(location)
    found = [path for path in candidates if suite in path.read_text().split()]
    if not found:
        where = ", ".join(str(p) for p in locations)
        raise ImageError(
            f"no apt source for Debian {suite} in {where}: the local base is built from this "
            f"machine's Debian {suite} sources; on another system pass --python-image "
            "(e.g. python:3.11.14-slim-bookworm) or build with Docker"
        )
    return found


def base_reference(sources: Sequence[Path], suite: str = SUITE) -> str:
    """The base's tag: a hash of every input, so a cached base is reused only when they match."""
    recipe = {
        "suite": suite,
        "variant": "minbase",
        "packages": BASE_PACKAGES,
        "dpkg": BASE_DPKG_OPTIONS,
        "env": BASE_ENV,
        "sources": [path.read_text() for path in sources],
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return f"{BASE_REPOSITORY}:{suite}-py311-{key}"


def build_base(tools: Buildah, suite: str = SUITE) -> str:
    """The local Debian base (built with mmdebstrap unless cached); returns its reference."""
    sources = apt_source_files(suite)
    reference = base_reference(sources, suite)
    if tools.exists(reference):
        return reference
    with tempfile.TemporaryDirectory(prefix="predict-buy-base-") as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            *(f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS),
            suite,
            str(rootfs),
            *(str(path) for path in sources),
        ]
        run(command, f"mmdebstrap of Debian {suite}")
        container = run(tools.buildah("from", "scratch"), "buildah from scratch").strip()
        try:
            run(tools.buildah("add", container, str(rootfs), "/"), "add the root file system")
            config = [item for env in BASE_ENV for item in ("--env", env)]
            run(
                tools.buildah("config", *config, "--cmd", "python3", container),
                "configure the base",
            )
            # Docker format keeps the service image's HEALTHCHECK (OCI has no such field).
            run(
                tools.buildah("commit", "--quiet", "--format", "docker", container, reference),
                "commit the base",
            )
        finally:
            subprocess.run(tools.buildah("rm", container), capture_output=True, check=False)  # noqa: S603 (cleanup)
    return reference


def ca_bundle() -> Path | None:
    """This machine's CA bundle ($SSL_CERT_FILE or the usual places), to mount into RUN steps."""
    configured = os.environ.get("SSL_CERT_FILE")
    for path in ([Path(configured)] if configured else []) + list(CA_BUNDLES):
        if path.is_file():
            return path
    return None


def check_context(context: Path) -> None:
    """The context must hold the Dockerfile and the model it copies."""
    missing = [name for name in (str(DOCKERFILE), *MODEL_FILES) if not (context / name).is_file()]
    if missing:
        raise ImageError(
            f"the build context {context} lacks {', '.join(missing)}: the image serves the model "
            "in models/; train one with `make run` (or fetch it with `dvc pull train evaluate`)"
        )


def build_with_buildah(
    tools: Buildah, context: Path, reference: str, python_image: str | None
) -> ImageFacts:
    """buildah build of service/Dockerfile (Docker format, so HEALTHCHECK survives)."""
    check_context(context)
    base = python_image or build_base(tools)
    command = tools.buildah(
        "build",
        "--quiet",
        "--isolation",
        tools.isolation,
        "--network",
        "host",
        "--format",
        "docker",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--file",
        str(context / DOCKERFILE),
        "--tag",
        reference,
    )
    bundle = ca_bundle()
    if bundle is not None:
        command += ["--volume", f"{bundle}:{CA_IN_BUILD}:ro"]
    run([*command, str(context)], f"buildah build of {DOCKERFILE}")
    return inspect_with_podman(tools, reference, base)


def inspect_with_podman(tools: Buildah, reference: str, base: str) -> ImageFacts:
    """Id, digest, size and layers of an image in buildah's and podman's storage."""
    [image] = json.loads(run(tools.podman("image", "inspect", reference), f"inspect {reference}"))
    history = json.loads(
        run(tools.podman("history", "--format", "json", reference), f"history of {reference}")
    )
    sizes = [int(entry.get("size") or 0) for entry in reversed(history) if entry.get("size")]
    diff_ids = image["RootFS"]["Layers"]
    layers = tuple(
        Layer(digest, sizes[index] if index < len(sizes) else 0)
        for index, digest in enumerate(diff_ids)
    )
    return ImageFacts(
        reference=reference,
        engine="buildah",
        image_id=f"sha256:{image['Id']}",
        digest=image["Digest"],
        size_bytes=int(image["Size"]),
        layers=layers,
        base=base,
    )


def build_with_docker(context: Path, reference: str, python_image: str | None) -> ImageFacts:
    """docker build (buildx where it is the default builder) on the Dockerfile's own base."""
    check_context(context)
    arguments = ["--build-arg", f"PYTHON_IMAGE={python_image}"] if python_image else []
    dockerfile = str(context / DOCKERFILE)
    run(
        ["docker", "build", *arguments, "--file", dockerfile, "--tag", reference, str(context)],
        f"docker build of {DOCKERFILE}",
    )
    [image] = json.loads(run(["docker", "image", "inspect", reference], f"inspect {reference}"))
    digests = image.get("RepoDigests") or [image["Id"]]
    return ImageFacts(
        reference=reference,
        engine="docker",
        image_id=image["Id"],
        digest=digests[0].rsplit("@", 1)[-1],
        size_bytes=int(image["Size"]),
        layers=tuple(Layer(d, 0) for d in image["RootFS"]["Layers"]),
        base=python_image or "the Dockerfile's PYTHON_IMAGE default",
    )


def build(
    context: Path, reference: str, engine: str = "auto", python_image: str | None = None
) -> ImageFacts:
    """Build service/Dockerfile from `context` with the engine asked for, or the one answering."""
    if engine == "docker" or (engine == "auto" and docker_answers()):
        return build_with_docker(context, reference, python_image)
    return build_with_buildah(Buildah(), context, reference, python_image)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="build (or reuse) the local Debian base; print its name")
    image = commands.add_parser("build", help="build service/Dockerfile; print what was built")
    image.add_argument("--reference", help=f"name:tag (default {REPOSITORY}:v<version>)")
    image.add_argument("--engine", choices=("auto", "docker", "buildah"), default="auto")
    image.add_argument("--python-image", help="base image (default: docker's, or the local base)")
    image.add_argument("--context", type=Path, default=REPO_ROOT, help="the repository root")
    image.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build what was asked; 0 on success, 1 with the reason on failure."""
    args = parse_args(argv)
    try:
        if args.command == "base":
            print(build_base(Buildah()))
            return 0
        reference = args.reference or f"{REPOSITORY}:v{version(args.context)}"
        facts = build(args.context.resolve(), reference, args.engine, args.python_image)
    except ImageError as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(facts)) if args.json else facts.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
