"""Materialize: the latest row per entity key of each view, pushed to Redis from the executors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark.offline.sources import TS, key_col, ranking, read_view
from featurestore_spark.online.redis_push import PushSpec, push_batches
from featurestore_spark.online.settings import RedisSettings
from featurestore_spark.specs import FeatureViewSpec, RepoSpec


@dataclass(frozen=True)
class PushReport:
    """Outcome of one view's push."""

    view: str
    rows: int
    written: int
    skipped: int  # not newer than what Redis holds


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def latest_rows(spark: SparkSession, view: FeatureViewSpec, start: datetime, end: datetime) -> DataFrame:
    """Per entity key, the row with start <= ts <= end that wins by (ts, created, tie hash), as in the join.

    One aggregate of a ranking struct per key (no global sort); columns: the join keys under
    their names, ``__ts_us`` and the features.
    """
    features = tuple(f.name for f in view.features)
    rows = read_view(spark, view, features)
    keys = [key_col(i) for i in range(len(view.join_keys))]
    rows = rows.where(F.col(TS).between(F.lit(_utc(start)), F.lit(_utc(end))))
    for k in keys:
        rows = rows.where(F.col(k).isNotNull())
    best = rows.groupBy(*keys).agg(F.max(ranking(features)).alias("w"))
    return best.select(
        *[F.col(k).alias(spec.name) for k, spec in zip(keys, view.join_keys)],
        F.col("w.ts").alias("__ts_us"),
        *[F.col(f"w.`{f}`").alias(f) for f in features],
    )


def materialize_view(
    spark: SparkSession, repo: RepoSpec, view: FeatureViewSpec, settings: RedisSettings,
    start: datetime, end: datetime, *, writers: int | None = None,
) -> PushReport:
    """Push the latest rows of ``view`` in [start, end]; returns counts (one small row per partition reaches the driver)."""
    rows = latest_rows(spark, view, start, end)
    spec = PushSpec(
        project=repo.project,
        view=view.name,
        keys=tuple((k.name, k.dtype) for k in view.join_keys),
        features=tuple((f.name, f.dtype) for f in view.features),
        settings=settings,
    )
    parts = writers or spark.sparkContext.defaultParallelism
    counts = rows.repartition(parts).mapInArrow(
        lambda batches: push_batches(batches, spec), "written long, skipped long"
    ).agg(F.sum("written").alias("written"), F.sum("skipped").alias("skipped")).first()
    written, skipped = int(counts["written"] or 0), int(counts["skipped"] or 0)
    return PushReport(view=view.name, rows=written + skipped, written=written, skipped=skipped)
