#!/usr/bin/env python3
"""Scan model files for anything that could run code when loaded: modelscan, then what it misses.

    .venv/bin/python scripts/scan_model.py models/model.skops models/model.npz

modelscan reads .skops and .npz files as zip archives of .npy arrays (plus skops' schema.json).
With numpy >= 2.4, modelscan 0.8.8's numpy scanner fails on every .npy member (it calls
numpy.lib.format._check_version, which numpy removed), reports those failures as "errors",
scans nothing and exits 3. A scan that passes while scanning nothing is worse than none, so this
script runs modelscan, fails on every issue it reports, and then accounts for each archive member
modelscan did not scan:

  *.npy         the header must not declare an object dtype: an object array loads only
                through pickle, the one way a numpy file can run code (skops and ml.compiled
                never write one)
  schema.json   (.skops only) every type the file would construct must be in ml.artefact's
                TRUSTED_TYPES, the same list the loader enforces (skops.io.get_untrusted_types)

A member that neither modelscan nor these checks cover fails the scan. Exit status: 0 clean,
1 findings (each printed with file, member and reason), 2 bad usage or modelscan unusable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
SKOPS_SCHEMA: Final = "schema.json"
# modelscan exit codes: 0 clean, 1 issues found, 2 scan failed, 3 nothing scanned; 4 is misuse.
MODELSCAN_REPORTED: Final = (0, 1, 2, 3)


class ScanUsageError(Exception):
    """The scan could not run: a missing file, or modelscan itself failed; exit status 2."""


@dataclass
class FileScan:
    """What the scan of one model file found and covered."""

    path: Path
    findings: list[str] = field(default_factory=list)
    scanned_by_modelscan: list[str] = field(default_factory=list)
    checked_here: list[str] = field(default_factory=list)

    def fail(self, member: str | None, problem: str) -> None:
        where = f"{self.path}:{member}" if member else str(self.path)
        self.findings.append(f"{where}: {problem}")


def run_modelscan(modelscan: Path, path: Path) -> dict[str, Any]:
    """modelscan's JSON report for one file; ScanUsageError when modelscan itself failed."""
    with tempfile.TemporaryDirectory(prefix="scan-model-") as workdir:
        report_path = Path(workdir) / "report.json"
        completed = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
            [
                str(modelscan),
                "scan",
                "-p",
                str(path.resolve()),
                "-r",
                "json",
                "-o",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=workdir,  # modelscan looks for ./modelscan-settings.toml: use its defaults
        )
        if completed.returncode not in MODELSCAN_REPORTED or not report_path.is_file():
            output = (completed.stderr.strip() or completed.stdout.strip())[:500]
            raise ScanUsageError(
                f"{path}: modelscan exited {completed.returncode} without a report: {output}"
            )
        return json.loads(report_path.read_text())


def apply_modelscan_report(scan: FileScan, report: dict[str, Any]) -> set[str]:
    """Record modelscan's issues as findings; return the members it really scanned.

    Sources are "<file name>" for the file itself or "<file name>:<member>" inside an archive.
    """
    prefix = f"{scan.path.name}:"

    def member_of(source: str) -> str | None:
        if source == scan.path.name:
            return None  # the file itself, not a member of it
        return source[len(prefix) :] if source.startswith(prefix) else source

    for issue in report.get("issues", []):
        scan.fail(
            member_of(str(issue.get("source", ""))),
            f"modelscan {issue.get('severity', '?')}: {issue.get('description', issue)}",
        )
    failed = {member_of(str(error.get("source", ""))) for error in report.get("errors", [])}
    scanned = report.get("summary", {}).get("scanned", {}).get("scanned_files", [])
    covered = {member_of(str(source)) for source in scanned} - failed
    return {scan.path.name if member is None else member for member in covered}


def npy_header_problem(stream: Any) -> str | None:
    """Why an .npy stream could run code when loaded (an object dtype), or None if it cannot."""
    import numpy as np  # the scan environment has numpy; only load it when an array is checked

    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            _, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            return f"unknown .npy format version {version}; expected 1.0, 2.0 or 3.0"
    except ValueError as error:
        return f"not a valid .npy array header ({error})"
    if dtype.hasobject:
        return (
            f"array of dtype {dtype} holds Python objects: it loads only through pickle, "
            "which can run code (expected numeric arrays only)"
        )
    return None


def untrusted_skops_types(path: Path, trusted: Iterable[str]) -> list[str]:
    """Types the .skops file would construct that are neither skops defaults nor trusted."""
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))


def project_trusted_types() -> list[str]:
    """The trusted type list the project's loader enforces (ml.artefact.TRUSTED_TYPES)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from ml.artefact import TRUSTED_TYPES

    return list(TRUSTED_TYPES)


def check_archive(scan: FileScan, covered: set[str], trusted: Iterable[str] | None) -> None:
    """Check every archive member modelscan did not cover; a .skops file's types as well."""
    with zipfile.ZipFile(scan.path) as archive:
        for member in archive.namelist():
            if member in covered:
                scan.scanned_by_modelscan.append(member)
            elif member.endswith(".npy"):
                with archive.open(member) as stream:
                    problem = npy_header_problem(stream)
                if problem:
                    scan.fail(member, problem)
                scan.checked_here.append(member)
            elif member == SKOPS_SCHEMA and scan.path.suffix == ".skops":
                scan.checked_here.append(member)  # the type audit below reads it
            else:
                scan.fail(member, "modelscan did not scan it and no other check here covers it")
    if scan.path.suffix == ".skops":
        try:
            untrusted = untrusted_skops_types(
                scan.path, project_trusted_types() if trusted is None else trusted
            )
        # Whatever skops raises on a damaged schema, the file cannot be vouched for: a finding.
        except Exception as error:
            scan.fail(SKOPS_SCHEMA, f"skops could not audit the file's types ({error})")
            return
        if untrusted:
            scan.fail(SKOPS_SCHEMA, f"types outside the trusted list: {untrusted}")


def scan_file(path: Path, modelscan: Path, trusted: Iterable[str] | None = None) -> FileScan:
    """modelscan, then the checks for everything it did not scan (see the module docstring)."""
    if not path.is_file():
        raise ScanUsageError(f"{path}: no such file (run `dvc repro` or `dvc pull` first)")
    scan = FileScan(path)
    covered = apply_modelscan_report(scan, run_modelscan(modelscan, path))
    if zipfile.is_zipfile(path):
        check_archive(scan, covered, trusted)
    elif path.name in covered:
        scan.scanned_by_modelscan.append(path.name)
    else:
        scan.fail(None, "modelscan did not scan this file and no other check here covers it")
    return scan


def describe(scan: FileScan) -> str:
    """One line per file: what covered its members, and the verdict."""
    verdict = f"{len(scan.findings)} finding(s)" if scan.findings else "clean"
    return (
        f"{scan.path}: {verdict}; {len(scan.scanned_by_modelscan)} member(s) scanned by "
        f"modelscan, {len(scan.checked_here)} checked here"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Scan each file; 0 when all are clean, 1 on findings, 2 when the scan could not run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="model files (.skops, .npz, ...)")
    parser.add_argument(
        "--modelscan",
        type=Path,
        default=Path(sys.executable).parent / "modelscan",
        help="modelscan executable (default: the one beside this Python)",
    )
    args = parser.parse_args(argv)
    if not args.modelscan.is_file():
        print(f"scan_model: modelscan not found at {args.modelscan}", file=sys.stderr)
        return 2
    findings: list[str] = []
    try:
        for path in args.files:
            scan = scan_file(path, args.modelscan)
            print(describe(scan))
            findings += scan.findings
    except ScanUsageError as error:
        print(f"scan_model: {error}", file=sys.stderr)
        return 2
    for finding in findings:
        print(f"FINDING {finding}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
