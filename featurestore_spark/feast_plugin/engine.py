"""A Feast batch engine that materializes with this engine's Redis push.

``batch_engine: featurestore_spark.feast_plugin.RedisPushEngine`` in feature_store.yaml. For each
view Feast asks for, the latest row per entity key with start <= ts <= end is pushed from the
executors with the atomic newer-wins script (docs/semantics.md sections 2 and 3). Feast's
``materialize`` and ``materialize_incremental`` then record the interval in Feast's registry
(``registry.apply_materialization``), as with any engine whose ``applies_materialization`` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feast.infra.common.materialization_job import (
    MaterializationJob,
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.base import ComputeEngine
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictInt, StrictStr

from featurestore_spark.errors import NotSupportedError, OnlineStoreError
from featurestore_spark.feast_plugin._common import redis_target, repo_spec, spark_session
from featurestore_spark.online.materialize import PushReport, materialize_view


class RedisPushEngineConfig(FeastConfigBaseModel):
    """``batch_engine`` settings. Unknown keys are errors."""

    type: StrictStr = "featurestore_spark.feast_plugin.RedisPushEngine"
    """The engine class, as Feast imports it."""

    writers: StrictInt | None = None
    """At most this many Spark partitions write to Redis (default: the session's default parallelism);
    fewer when the latest-row aggregate has fewer partitions."""


@dataclass
class RedisPushJob(MaterializationJob):
    """A finished push of one view: Feast reads its status; ``report`` holds the counts."""

    task: MaterializationTask
    report: PushReport

    def status(self) -> MaterializationJobStatus:
        return MaterializationJobStatus.SUCCEEDED

    def error(self) -> BaseException | None:
        return None

    def should_be_retried(self) -> bool:
        return False

    def job_id(self) -> str:
        return f"{self.task.feature_view.name}-{self.task.start_time.isoformat()}-{self.task.end_time.isoformat()}"

    def url(self) -> str | None:
        return None


class RedisPushEngine(ComputeEngine):
    """Feast's ComputeEngine interface for materialization only (see the module docstring).

    Errors (an unreachable Redis, an unsupported view, a missing column) are raised from
    ``materialize`` itself, before Spark work where they can be known beforehand; Feast then
    leaves the view's materialization intervals unchanged.
    """

    def __init__(self, *, writers: int | None = None, **kwargs: Any):
        kwargs.pop("type", None)
        super().__init__(**kwargs)
        self.writers = writers

    def update(self, project: str, views_to_delete: Sequence[Any], views_to_keep: Sequence[Any],
               entities_to_delete: Sequence[Any], entities_to_keep: Sequence[Any]) -> None:
        """Nothing to provision: Redis keys are written on materialization."""

    def teardown_infra(self, project: str, fvs: Sequence[Any], entities: Sequence[Any]) -> None:
        """Nothing to tear down; Feast's online store deletes the keys."""

    def _materialize_one(self, registry: Any, task: MaterializationTask, **kwargs: Any) -> RedisPushJob:
        if task.disable_event_timestamp:
            raise NotSupportedError(
                "materialize(disable_event_timestamp=True) is not supported by the featurestore_spark engine: "
                "pass the start and end dates to materialize"
            )
        settings = redis_target(self.repo_config)
        repo = repo_spec(self.repo_config, registry, task.project, [task.feature_view])
        view = repo.views[task.feature_view.name]
        settings.check()
        report = materialize_view(
            spark_session(self.repo_config), repo, view, settings, task.start_time, task.end_time, writers=self.writers,
        )
        if not report.ok:  # raising keeps Feast from recording the interval as materialized
            raise OnlineStoreError(f"{report.summary()}; run the same materialize again (newer-wins makes it safe)")
        if task.tqdm_builder is not None:
            bar = task.tqdm_builder(report.rows)
            bar.update(report.rows)
            bar.close()
        return RedisPushJob(task=task, report=report)
