"""Materialization watermarks: what each view's incremental runs have pushed, in a small Delta table.

One row per successful run: (project, view, start, end, source_version, ...). The row certifies
that every row of the view's source up to Delta version ``source_version`` with event time
<= ``end`` (and within the view's ttl of it) has been pushed. Rows are only ever appended: a Delta
blind append is atomic and never conflicts with another writer's append, so concurrent runs are
safe. A reader takes one whole row (the one with the latest end, then the latest version); a row
is self-consistent, so a race can only make the next run push again what is already in Redis,
which the newer-wins write turns into skips.

The table lives next to the Feast registry (``<registry folder>/fsspark_watermarks``) unless
``FeatureStore(state_path=...)`` or ``$FSSPARK_STATE_PATH`` names another location. On object
stores, configure Delta's multi-writer log store (e.g. S3 with DynamoDB) as for any Delta table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.specs import RepoSpec

SCHEMA = ("project string, view string, start_ts timestamp, end_ts timestamp, source_version long, "
          "source string, written long, skipped long, recorded_at timestamp, identity string")


@dataclass(frozen=True, kw_only=True)
class Watermark:
    """The last successful incremental run of a view."""

    end: datetime
    source_version: int


_FILESYSTEMS = ("file", "s3", "s3a", "gs", "abfs", "abfss", "hdfs", "dbfs", "wasbs")


def default_state_path(repo: RepoSpec) -> str:
    """``<registry folder>/fsspark_watermarks``, else ``<repo>/data/fsspark_watermarks``."""
    registry = repo.registry or ""
    filesystem = "://" not in registry or registry.split("://")[0] in _FILESYSTEMS
    if registry and filesystem:  # a SQL registry's URI (with its password) is no place for a table
        parent = registry.rsplit("/", 1)[0] if "://" in registry else str(Path(registry).parent)
        return f"{parent}/fsspark_watermarks"
    return str(Path(repo.repo_path) / "data" / "fsspark_watermarks")


def last_watermark(spark: SparkSession, path: str, project: str, view: str, identity: str) -> Watermark | None:
    """The watermark of ``view`` for this source table and definition (``identity``), or None when no
    incremental run of them has succeeded: a recreated table or a changed view starts afresh."""
    return last_watermarks(spark, path, project, {view: identity}).get(view)


def last_watermarks(spark: SparkSession, path: str, project: str, identities: dict[str, str]) -> dict[str, Watermark]:
    """``last_watermark`` of several views (view -> identity) in one query; views without one are absent."""
    if not identities or not delta_io.is_delta_table(spark, path):
        return {}
    marks = spark.read.format("delta").load(path)
    if "identity" not in marks.columns:  # written before identities were recorded: start afresh
        return {}
    wanted = F.lit(False)
    for view, identity in identities.items():
        wanted = wanted | ((F.col("view") == view) & (F.col("identity") == identity))
    rows = (
        marks
        .where((F.col("project") == project) & wanted)
        .groupBy("view")  # the latest end, then the latest version: one whole row
        .agg(F.max(F.struct(F.unix_micros("end_ts").alias("end_us"), F.col("source_version"))).alias("m"))
        .collect()
    )
    # Micros, not the timestamp: PySpark hands a timestamp back as a naive datetime in the driver
    # process's local time zone, which need not be UTC.
    return {r["view"]: Watermark(end=datetime.fromtimestamp(0, timezone.utc) + timedelta(microseconds=r["m"]["end_us"]),
                                 source_version=int(r["m"]["source_version"])) for r in rows}


def record_watermark(
    spark: SparkSession, path: str, *, project: str, view: str, start: datetime | None, end: datetime,
    source_version: int, source: str, written: int, skipped: int, identity: str,
) -> None:
    """Append one watermark row (atomic; creates the table on first use)."""
    row = (project, view, start, end, source_version, source, written, skipped, datetime.now(timezone.utc), identity)
    # mergeSchema: tables written before the identity column get it (their rows read as null).
    spark.createDataFrame([row], SCHEMA).write.format("delta").mode("append").option("mergeSchema", "true").save(path)
