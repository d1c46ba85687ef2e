"""Progress of a long build on a terminal: the build's steps, and while Spark runs, its active stages.

Entry points (the CLI, the jobs) use it; library code only calls the ``progress`` callback it is given.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from pyspark.sql import SparkSession

from featurestore_spark.runtime import is_connect


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class SparkProgress:
    """Write step lines as they come and, every ``every`` seconds, the task counts of running Spark stages.

    Example:
        >>> with SparkProgress(spark) as progress:                     # doctest: +SKIP
        ...     store.create_training_set("req.yaml", progress=progress.step)
    """

    def __init__(self, spark: SparkSession, write: Callable[[str], None] = _stderr, every: float = 5.0):
        # A Spark Connect client has no status tracker: it writes the step lines only.
        self._tracker = None if is_connect(spark) else spark.sparkContext.statusTracker()
        self._write, self._every = write, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fsspark-progress", daemon=True)
        self._last: dict[int, tuple[int, int]] = {}

    def step(self, line: str) -> None:
        self._write(line)

    def __enter__(self) -> SparkProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every)

    def _watch(self) -> None:
        while self._tracker is not None and not self._stop.wait(self._every):
            for stage in sorted(self._tracker.getActiveStageIds()):
                info = self._tracker.getStageInfo(stage)
                if info is None:
                    continue
                done = (info.numCompletedTasks, info.numTasks)
                if self._last.get(stage) != done:
                    self._last[stage] = done
                    self._write(f"      stage {stage}: {done[0]}/{done[1]} tasks")
