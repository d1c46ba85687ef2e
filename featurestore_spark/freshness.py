"""Freshness: how new each view's offline rows are, and how far Redis lags behind them.

Per view, from the Delta source at its current version: the newest event time (one aggregate of one
column, all views in one Spark job), its age against the view's ttl, and the last successful
incremental push of this source and definition (the watermark ``materialize_incremental`` keeps):
the event time it reached and the source version it read. A view is *stale* when its newest row is
older than its ttl: the join then gives NULL features for entity rows at the time of the check, and
Redis serves values at least that old. A view is *behind* when Delta holds versions the last push
did not read, or rows newer than the time it reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import reduce

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.offline.sources import TS, read_view
from featurestore_spark.online.incremental import source_identity
from featurestore_spark.online.watermarks import last_watermark
from featurestore_spark.specs import FeatureViewSpec, RepoSpec

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, kw_only=True)
class Freshness:
    """One view's freshness at ``checked_at``.

    Attributes:
        view: the feature view.
        ttl: its ttl (None: unlimited).
        newest: the newest event time in its source (None: the source has no rows).
        version: the source's Delta version that was read.
        pushed_through: the end of the last successful incremental push of this source table and view
            definition (None: none yet; plain ``materialize`` keeps no watermark).
        pushed_version: the source version that push read.
        checked_at: the time the ages are measured from.
    """

    view: str
    ttl: timedelta | None
    newest: datetime | None
    version: int
    pushed_through: datetime | None
    pushed_version: int | None
    checked_at: datetime

    @property
    def age(self) -> timedelta | None:
        """How old the newest row is."""
        return None if self.newest is None else self.checked_at - self.newest

    @property
    def stale(self) -> bool:
        """The newest row is older than the ttl (or there is none, with a ttl set)."""
        return self.ttl is not None and (self.age is None or self.age > self.ttl)

    @property
    def versions_behind(self) -> int | None:
        """Delta versions the last incremental push did not read (None: never pushed)."""
        return None if self.pushed_version is None else max(self.version - self.pushed_version, 0)

    @property
    def lag(self) -> timedelta | None:
        """How far the newest row is past the time the last push reached (zero when it is not)."""
        if self.newest is None or self.pushed_through is None:
            return None
        return max(self.newest - self.pushed_through, timedelta(0))

    @property
    def behind(self) -> bool:
        """Redis may lack rows Delta has: never pushed, new versions, or rows past the push's end."""
        if self.pushed_version is None:
            return self.newest is not None
        return bool(self.versions_behind) or bool(self.lag)

    def summary(self) -> str:
        ttl = "unlimited" if self.ttl is None else _span(self.ttl)
        if self.newest is None:
            text = f"{self.view}: no rows at version {self.version} (ttl {ttl})"
        else:
            text = (f"{self.view}: newest {_iso(self.newest)}, age {_span(self.age)} (ttl {ttl}), "
                    f"version {self.version}")
        if self.stale:
            text += "; STALE"
        if self.pushed_version is None:
            return text + "; never pushed incrementally"
        text += f"; pushed through {_iso(self.pushed_through)} at version {self.pushed_version}"
        if self.behind:
            text += f"; BEHIND by {self.versions_behind} version(s), {_span(self.lag or timedelta(0))} of event time"
        return text


def freshness(
    spark: SparkSession, repo: RepoSpec, views: list[FeatureViewSpec], state_path: str, now: datetime | None = None,
) -> list[Freshness]:
    """The freshness of ``views`` at ``now`` (default: the current time), in their order.

    Reads each source's current version from its Delta log, then the newest event time of every view
    in one Spark job (one small row per view reaches the driver).

    Raises:
        SourceError: a source is not a readable Delta table.
        MissingColumnError / TimestampTypeError: a source lacks the view's key or timestamp column.
    """
    now = datetime.now(timezone.utc) if now is None else (now.replace(tzinfo=timezone.utc) if now.tzinfo is None
                                                          else now.astimezone(timezone.utc))
    versions = [delta_io.latest_version(spark, v.source.address, what=f"source of feature view '{v.name}'")
                for v in views]
    newest = _newest(spark, views, versions)
    out = []
    for view, version in zip(views, versions):
        mark = last_watermark(spark, state_path, repo.project, view.name, source_identity(spark, view))
        out.append(Freshness(
            view=view.name, ttl=view.ttl, newest=newest.get(view.name), version=version,
            pushed_through=mark.end if mark else None, pushed_version=mark.source_version if mark else None,
            checked_at=now,
        ))
    return out


def _newest(spark: SparkSession, views: list[FeatureViewSpec], versions: list[int]) -> dict[str, datetime]:
    """Newest event time per view (views without rows are absent), all views in one job. As micros:
    PySpark would hand a timestamp back in the driver's local time zone."""
    if not views:
        return {}
    parts = []
    for view, version in zip(views, versions):
        raw = delta_io.read_delta(spark, view.source.address, what=f"source of feature view '{view.name}'",
                                  version=version)
        rows = read_view(spark, view, (), raw=raw)  # checks the key and timestamp columns, as the join does
        parts.append(rows.agg(F.unix_micros(F.max(TS)).alias("us")).select(F.lit(view.name).alias("view"), "us"))
    rows = reduce(lambda a, b: a.unionByName(b), parts).collect()
    return {r["view"]: EPOCH + timedelta(microseconds=r["us"]) for r in rows if r["us"] is not None}


def _iso(ts: datetime | None) -> str:
    return "-" if ts is None else ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _span(delta: timedelta | None) -> str:
    """``3d 4h 5m`` (seconds dropped above an hour), ``42s`` below a minute."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" * bool(days), f"{hours}h" * bool(hours), f"{minutes}m" * bool(minutes)]
    if seconds < 3600:
        parts.append(f"{secs}s" * bool(secs or seconds == 0))
    return sign + " ".join(p for p in parts if p)
