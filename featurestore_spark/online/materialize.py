"""Materialize: the latest row per entity key of each view, pushed to Redis from the executors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark.columns import TS, TS_MICROS, key_col
from featurestore_spark.online.redis_push import COUNTS_SCHEMA, PushSpec, push_batches
from featurestore_spark.online.server_identity import until_stable
from featurestore_spark.online.settings import RedisSettings
from featurestore_spark.runtime import default_parallelism
from featurestore_spark.sources import ranking, read_view
from featurestore_spark.specs import FeatureViewSpec, RepoSpec


@dataclass(frozen=True, kw_only=True)
class PushReport:
    """Outcome of one view's push.

    Attributes:
        view: the feature view.
        rows: entity keys pushed (written + skipped + failed).
        written: keys whose values were newer than what Redis held, and were written (acknowledged by
            the server that holds them now; with ``min_replicas``, by that many replicas too).
        created: of ``written``, keys made whole by RESTORE because none of the keys of their call
            existed (no newer-wins check needed); the others went through the newer-wins script.
        skipped: keys Redis already held with an equal or newer event timestamp.
        failed: keys not written because the server refused them or could not be reached, or not
            confirmed (the server restarted during every pass, fewer replicas acknowledged them); rerun.
        error: the first failure's reason (no secrets), None when nothing failed.
        start, end: the event-time window pushed.
        source: how the rows were chosen (window, change feed, ...), for logs and the CLI.
        passes: 1, or more when Redis restarted or failed over during the push and every key was sent
            again (the counts are the last pass's).
    """

    view: str
    rows: int
    written: int
    skipped: int
    created: int = 0
    failed: int = 0
    error: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    source: str = "window"
    passes: int = 1

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        text = (f"{self.view}: {self.rows} keys, {self.written} written, {self.skipped} skipped (not newer), "
                f"{self.failed} failed [{self.source}]")
        if self.passes > 1:
            text += f"; Redis restarted or failed over during the push: every key was sent again ({self.passes} passes)"
        return text + (f"; first failure: {self.error}" if self.error else "")


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def latest_of(rows: DataFrame, view: FeatureViewSpec, start: datetime | None, end: datetime) -> DataFrame:
    """Per entity key, the row of ``rows`` (normal form) with start <= ts <= end that wins by
    (ts, created, tie hash), as in the join.

    One aggregate of a ranking struct per key (no global sort); columns: the join keys under
    their names, ``__ts_us`` and the features. ``start`` None means no lower bound.
    """
    features = tuple(f.name for f in view.features)
    keys = [key_col(i) for i in range(len(view.join_keys))]
    rows = rows.where(F.col(TS) <= F.lit(utc(end)))
    if start is not None:
        rows = rows.where(F.col(TS) >= F.lit(utc(start)))
    for k in keys:
        rows = rows.where(F.col(k).isNotNull())
    best = rows.groupBy(*keys).agg(F.max(ranking(features)).alias("w"))
    return best.select(
        *[F.col(k).alias(spec.name) for k, spec in zip(keys, view.join_keys)],
        F.col("w.ts").alias(TS_MICROS),
        *[F.col("w").getField("f").getField(f).alias(f) for f in features],
    )


def latest_rows(spark: SparkSession, view: FeatureViewSpec, start: datetime, end: datetime) -> DataFrame:
    """``latest_of`` over the current version of the view's Delta source."""
    return latest_of(read_view(spark, view, tuple(f.name for f in view.features)), view, start, end)


def push(
    spark: SparkSession, repo: RepoSpec, view: FeatureViewSpec, settings: RedisSettings, rows: DataFrame,
    *, writers: int | None = None, min_replicas: int = 0,
) -> dict:
    """Write ``rows`` (as ``latest_of`` makes them) from the executors; returns the counts.

    At most ``writers`` partitions (default: the session's default parallelism) write, one
    connection each; fewer when ``rows`` has fewer partitions. ``coalesce`` merges the aggregate's
    partitions into the writing tasks without a shuffle: a ``repartition`` here cost a second shuffle
    and a sort of every row (1.2 s of the Spark side's 2 s at 1M keys). One small row per partition
    reaches the driver.

    When the server restarted or failed over during the push (``server_identity``), keys written
    before may be gone: ``rows`` is pushed again, whole (it must give the same rows, or newer ones).
    When that cannot be settled, every key counts as failed. With ``min_replicas``, keys count as
    written only once that many replicas acknowledged them (``WAIT``).
    """
    spec = PushSpec(
        project=repo.project,
        view=view.name,
        keys=tuple((k.name, k.dtype) for k in view.join_keys),
        features=tuple((f.name, f.dtype) for f in view.features),
        settings=settings,
        min_replicas=min_replicas,
    )
    parts = writers or default_parallelism(spark)

    def one_pass(resend: bool) -> dict:
        pass_spec = dataclasses.replace(spec, resend=resend)
        counts = rows.coalesce(parts).mapInArrow(lambda batches: push_batches(batches, pass_spec),
                                                 COUNTS_SCHEMA).agg(
            *[F.sum(c).alias(c) for c in ("written", "created", "skipped", "failed")],
            F.first("error", ignorenulls=True).alias("error"),
        ).collect()[0]  # a global aggregate: one row
        out = {c: int(counts[c] or 0) for c in ("written", "created", "skipped", "failed")}
        return out | {"error": counts["error"], "rows": out["written"] + out["skipped"] + out["failed"]}

    counts, passes, unconfirmed = until_stable(settings, one_pass)
    if unconfirmed:
        counts = {"written": 0, "created": 0, "skipped": 0, "failed": counts["rows"], "error": unconfirmed,
                  "rows": counts["rows"]}
    return counts | {"passes": passes}


def materialize_view(
    spark: SparkSession, repo: RepoSpec, view: FeatureViewSpec, settings: RedisSettings,
    start: datetime, end: datetime, *, writers: int | None = None, min_replicas: int = 0,
) -> PushReport:
    """Push the latest rows of ``view`` in [start, end]; returns the counts."""
    counts = push(spark, repo, view, settings, latest_rows(spark, view, start, end), writers=writers,
                  min_replicas=min_replicas)
    return PushReport(view=view.name, start=utc(start), end=utc(end), **counts)
