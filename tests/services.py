"""The long-running services of the test tiers (the standalone cluster, the Spark Connect server),
each driven by its script in ``scripts/``: started for a test module unless already running, and then
stopped again by that module."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

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


def example_repo(folder: Path, port: int, db: int, view_path: Path | None = None) -> Path:
    """A copy of the example repo whose online store is the Redis at 127.0.0.1:``port``, database ``db``;
    ``view_path`` moves the source of driver_hourly_stats (the view the stream tests feed)."""
    shutil.copytree(ROOT / "feature_repo", folder, ignore=shutil.ignore_patterns("data", "*.db"))
    yaml = folder / "feature_store.yaml"
    yaml.write_text(re.sub(r'connection_string: "[^"]*"', f'connection_string: "127.0.0.1:{port},db={db}"',
                           yaml.read_text()))
    if view_path is not None:
        defs = folder / "features.py"
        defs.write_text(defs.read_text().replace('path=str(DATA / "driver_hourly_stats")', f'path="{view_path}"'))
    return folder


def hashes(port: int, db: int) -> dict:
    """Every hash of the database, key -> {field: value}, for byte-for-byte comparisons."""
    client = redis.Redis(port=port, db=db)
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
