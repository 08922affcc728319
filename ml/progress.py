"""Progress lines for long pipeline steps: what is running, and how long each step took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(stage: str, message: str) -> Iterator[None]:
    """Print `message…` when a step starts and its duration when it ends."""
    say(stage, f"{message} ...")
    started = time.perf_counter()
    yield
    say(stage, f"{message}: done in {time.perf_counter() - started:.1f}s")
