"""Incremental materialization, driven by Delta commit versions so that late rows are not missed.

A run pushes, per entity key, the latest of:

- the rows with ``watermark.end < ts <= end`` of the source snapshot at version V (the table's
  current version, pinned for the whole run), and
- the rows committed after the watermark's version (Delta change data feed, versions
  ``watermark.source_version + 1 .. V``, inserts and update post-images) with ``floor <= ts <= end``,
  where ``floor`` is ``end - ttl`` (unlimited ttl: no floor). These are the late rows: appended
  after the last run with old event timestamps.

The server's newer-wins check keeps a late row only where it is newer than what Redis holds.
Without a change data feed for those versions (``delta.enableChangeDataFeed`` off, or turned on
later) the run pushes the whole window ``[floor, end]`` of snapshot V instead: correct (newer-wins
makes re-pushing safe), but it reads the whole window; the report's ``source`` says so.

The first run (no watermark) pushes ``[end - ttl, end]`` (unlimited ttl: 52 weeks, as docs/semantics.md section 3.3).
On success the run appends a watermark (end, V) and, when the repo's Feast registry holds the
view, records the interval there too (``feast`` then sees it as materialized).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.columns import TS
from featurestore_spark.online.materialize import PushReport, latest_of, push, utc
from featurestore_spark.online.settings import RedisSettings
from featurestore_spark.online.watermarks import last_watermark, record_watermark
from featurestore_spark.sources import read_view
from featurestore_spark.specs import FeatureViewSpec, RepoSpec, definitions_hash

log = logging.getLogger(__name__)

#: How far back a first run of a view with unlimited ttl reaches.
NO_TTL_LOOKBACK = timedelta(weeks=52)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _reader(spark: SparkSession, view: FeatureViewSpec, **options: object):
    src = view.source
    reader = spark.read.format("delta")
    for name, value in options.items():
        reader = reader.option(name, value)
    return reader.load(src.path) if src.path else reader.table(src.table)


#: Delta's reasons for a change data feed that cannot be read for the versions asked: the feed is
#: off (or was turned on later), or the log of those versions was cleaned up.
_NO_FEED = ("DELTA_MISSING_CHANGE_DATA", "DELTA_CHANGE_TABLE_FEED_DISABLED", "DELTA_VERSION_NOT_FOUND",
            "DELTA_CANNOT_FIND_VERSION", "DELTA_LOG_FILE_NOT_FOUND", "DELTA_VERSIONS_NOT_CONTIGUOUS")
#: ... or a column was renamed, dropped or changed type in between (the feed cannot be read across);
#: not met in the tests: Delta 4.4 refuses writes to a table with the feed on after a rename or drop.
_SCHEMA_CHANGED = ("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE", "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA")


def _changes(spark: SparkSession, view: FeatureViewSpec, first: int, last: int) -> tuple[DataFrame | None, str]:
    """Rows added by versions first..last (change data feed), or None and why where the feed lacks them."""
    feed = _reader(spark, view, readChangeFeed="true", startingVersion=first, endingVersion=last)
    feed = feed.where(F.col("_change_type").isin("insert", "update_postimage"))
    try:
        feed.rdd.getNumPartitions()  # plans the scan: Delta checks here that every version has change data
    except AnalysisException as exc:
        if exc.getCondition() in _NO_FEED[:2]:
            return None, (f"no change data feed for versions {first}..{last} "
                          "(set delta.enableChangeDataFeed=true on the source)")
        if exc.getCondition() in _NO_FEED:
            return None, f"the log of versions {first}..{last} is gone ({exc.getCondition()})"
        if exc.getCondition() in _SCHEMA_CHANGED:
            return None, f"the source's schema changed within versions {first}..{last} ({exc.getCondition()})"
        raise
    location = delta_io.table_path(spark, view.source.address)
    gone = delta_io.missing_change_files(spark, location, first, last)  # removed by VACUUM
    if gone:
        return None, f"{len(gone)} change data file(s) of versions {first}..{last} were vacuumed"
    return feed, ""


def source_identity(spark: SparkSession, view: FeatureViewSpec) -> str:
    """What a watermark is valid for: the source table's Delta id (a recreated table gets a new one)
    and the view's definition (a new feature must be pushed for every key, not only the changed ones)."""
    table_id = delta_io.table_id(spark, view.source.address)
    return f"{table_id}/{definitions_hash([view])[:16]}"


def materialize_view_incremental(
    spark: SparkSession, repo: RepoSpec, view: FeatureViewSpec, settings: RedisSettings, end: datetime,
    state_path: str, *, writers: int | None = None, min_replicas: int = 0,
) -> PushReport:
    """Push what changed in ``view`` since its watermark, up to ``end``; advance the watermark if nothing failed."""
    end = utc(end)
    version = delta_io.latest_version(spark, view.source.address,
                                      what=f"source of feature view '{view.name}'")
    features = tuple(f.name for f in view.features)
    snapshot = read_view(spark, view, features, raw=_reader(spark, view, versionAsOf=version))
    floor = end - view.ttl if view.ttl else None
    identity = source_identity(spark, view)
    mark = last_watermark(spark, state_path, repo.project, view.name, identity)
    if mark is None:
        start = floor or end - NO_TTL_LOOKBACK
        rows, source = latest_of(snapshot, view, start, end), f"first run: window at version {version}"
    elif mark.source_version >= version:
        start = mark.end
        rows, source = latest_of(snapshot.where(F.col(TS) > F.lit(mark.end)), view, None, end), (
            f"window after {mark.end.isoformat()}, no new Delta versions")
    else:
        changes, why = _changes(spark, view, mark.source_version + 1, version)
        if changes is None:
            start = floor or EPOCH
            rows = latest_of(snapshot, view, floor, end)
            source = f"whole window at version {version}: {why}"
            log.warning("feature view '%s': %s", view.name, source)
        else:
            start = mark.end
            late = read_view(spark, view, features, raw=changes)
            late = late.where(F.col(TS) >= F.lit(floor)) if floor else late
            window = snapshot.where(F.col(TS) > F.lit(mark.end))
            rows = latest_of(window.unionByName(late), view, None, end)
            source = f"window after {mark.end.isoformat()} + change feed of versions {mark.source_version + 1}..{version}"
    log.info("feature view '%s': incremental push, %s", view.name, source)
    counts = push(spark, repo, view, settings, rows, writers=writers, min_replicas=min_replicas)
    report = PushReport(view=view.name, start=start, end=end, source=source, **counts)
    if report.ok:
        record_watermark(spark, state_path, project=repo.project, view=view.name, start=start, end=end,
                         source_version=version, source=source, written=report.written, skipped=report.skipped,
                         identity=identity)
    return report


def record_in_feast_registry(repo: RepoSpec, reports: list[PushReport]) -> list[str]:
    """Record successful pushes as materialization intervals in the repo's Feast registry.

    Does nothing without a registry file (the engine needs no ``feast apply``); a view the
    registry does not hold is skipped. Returns the views recorded.
    """
    done = [r for r in reports if r.ok and r.start is not None]
    if not repo.registry or not done or ("://" not in repo.registry and not Path(repo.registry).is_file()):
        return []
    import feast
    from feast.errors import FeatureViewNotFoundException

    registry = feast.FeatureStore(repo_path=repo.repo_path).registry
    recorded = []
    for report in done:
        try:
            fv = registry.get_feature_view(report.view, repo.project)
        except FeatureViewNotFoundException:
            log.info("feature view '%s' is not in the Feast registry %s; not recorded there", report.view,
                     repo.registry)
            continue
        registry.apply_materialization(fv, repo.project, report.start, report.end)
        recorded.append(report.view)
    return recorded

