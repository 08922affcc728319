"""What goes into the service image: the model check and a fingerprint of the build context.

The image is built from service/Dockerfile with the repository root as context. Before anything is
built, `verify_model_artefacts` checks that the model files the image ships are present and match
the sha256 in models/model.json. `context_fingerprint` hashes exactly the files Docker would send
(the context minus .dockerignore, like BuildKit) plus the Dockerfile, so two builds with the same
fingerprint have the same inputs. The release guard uses it to tell a re-run from new content.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from infra.errors import ModelArtefactError
from ml.artefact import (
    METADATA_FILE,
    ArtefactError,
    read_metadata,
    verify_file,
)

MODEL_DIR: Final = "models"
# Keys of ModelMetadata.artefacts that the image needs: the pipeline and its compiled form.
REQUIRED_ARTEFACTS: Final = ("pipeline", "compiled")
FETCH_COMMAND: Final = "dvc pull train evaluate"


def verify_model_artefacts(context_dir: Path) -> list[Path]:
    """Check models/model.json and every file it lists; return the verified paths.

    Raises ModelArtefactError naming the file and the `dvc pull` command, before any build.
    """
    model_dir = context_dir / MODEL_DIR
    try:
        metadata = read_metadata(model_dir)
        verified = [model_dir / METADATA_FILE]
        for name in REQUIRED_ARTEFACTS:
            verified.append(verify_file(model_dir, metadata, name))
    except ArtefactError as error:
        hint = "" if FETCH_COMMAND in str(error) else f"; run `{FETCH_COMMAND}`"
        raise ModelArtefactError(
            f"cannot build the service image, its model is not ready: {error}{hint}; "
            "then run the stack again"
        ) from error
    return verified


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool
    text: str


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Translate one .dockerignore pattern as moby's patternmatcher does (`**` spans dirs)."""
    out = "^"
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern[index + 1 : index + 2] == "*":
                index += 1
                if pattern[index + 1 : index + 2] == "/":
                    index += 1
                out += ".*" if index + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out += re.escape(pattern[index])
        else:
            out += re.escape(char)
        index += 1
    return re.compile(out + "$")


class DockerIgnore:
    """The rules of a .dockerignore file: later lines win, `!` re-includes, parents count."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            text = os.path.normpath(line[1:].strip() if exclusion else line).lstrip("/")
            if text in ("", "."):
                continue
            self.patterns.append(_Pattern(_pattern_regex(text), exclusion, text))

    @classmethod
    def for_build(cls, context_dir: Path, dockerfile: Path) -> DockerIgnore:
        """`<Dockerfile>.dockerignore` wins over `<context>/.dockerignore`, as in BuildKit."""
        for candidate in (Path(f"{dockerfile}.dockerignore"), context_dir / ".dockerignore"):
            if candidate.is_file():
                return cls(candidate.read_text().splitlines())
        return cls([])

    def ignored(self, relative: str) -> bool:
        parents = relative.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            # An inclusion can only change an unmatched path, an exclusion only a matched one.
            if pattern.exclusion != matched:
                continue
            hit = bool(pattern.regex.match(relative)) or any(
                pattern.regex.match("/".join(parents[: depth + 1])) for depth in range(len(parents))
            )
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether a `!` pattern could bring back a file below an ignored directory."""
        return any(
            p.exclusion and (p.text.startswith(directory + "/") or not p.text[:1].isalnum())
            for p in self.patterns
        )


def context_files(context_dir: Path, dockerfile: Path) -> list[str]:
    """Relative paths (sorted, `/`-separated) of the files Docker sends as the build context."""
    ignore = DockerIgnore.for_build(context_dir, dockerfile)
    found: list[str] = []
    for root, dirs, files in os.walk(context_dir):
        base = Path(root).relative_to(context_dir).as_posix()
        prefix = "" if base == "." else base + "/"
        kept_dirs = []
        for name in sorted(dirs):
            relative = prefix + name
            if ignore.ignored(relative) and not ignore.may_reinclude_under(relative):
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        found.extend(prefix + name for name in files if not ignore.ignored(prefix + name))
    return sorted(found)


def context_fingerprint(context_dir: Path, dockerfile: Path) -> str:
    """sha256 over the Dockerfile and every (path, mode, content) in the build context."""
    digest = hashlib.sha256()
    digest.update(b"dockerfile\0" + dockerfile.read_bytes() + b"\0")
    for relative in context_files(context_dir, dockerfile):
        path = context_dir / relative
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        executable = b"x" if os.access(path, os.X_OK) and not path.is_symlink() else b"-"
        digest.update(relative.encode() + b"\0" + executable + b"\0")
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()
