"""The long-running services of the test tiers (the standalone cluster, the Spark Connect server),
each driven by its script in ``scripts/``: started for a test module unless already running, and then
stopped again by that module."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def script_service(script: str, running_text: str) -> Iterator[None]:
    """``scripts/<script> start`` unless ``status`` prints ``running_text``; ``stop`` at the end if this
    call started it."""
    status = subprocess.run(["bash", f"scripts/{script}", "status"], cwd=ROOT, capture_output=True, text=True)
    started = running_text not in status.stdout
    if started:
        subprocess.run(["bash", f"scripts/{script}", "start"], cwd=ROOT, check=True, capture_output=True)
    try:
        yield
    finally:
        if started:
            subprocess.run(["bash", f"scripts/{script}", "stop"], cwd=ROOT, check=True, capture_output=True)
