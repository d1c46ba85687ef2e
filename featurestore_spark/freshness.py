"""Freshness: how new each view's offline rows are, and how far Redis lags behind them.

Per view, from the Delta source at its current version: the newest event time at or before the time
of the check, and the newest of all (one aggregate of one column, all views in one Spark job); the
age of the former against the view's ttl; and the last successful incremental push of this source
and definition (the watermark ``materialize_incremental`` keeps): the event time it reached and the
source version it read. A view is *stale* when no row lies within its ttl before the check: the join
then gives NULL features for entity rows at that time, and Redis serves nothing newer. An online view
is *behind* when no incremental push of this table and definition has succeeded, when a version the
push did not read adds rows, or when rows are newer than the time it reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import reduce

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.columns import TS
from featurestore_spark.online.incremental import source_identity
from featurestore_spark.online.materialize import utc
from featurestore_spark.online.watermarks import last_watermarks
from featurestore_spark.sources import read_view
from featurestore_spark.specs import FeatureViewSpec, RepoSpec

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, kw_only=True)
class Freshness:
    """One view's freshness at ``checked_at``.

    Attributes:
        view: the feature view.
        ttl: its ttl (None: unlimited).
        online: whether the view is pushed to Redis (an offline-only view is never behind).
        newest: the newest event time in its source at or before ``checked_at`` (None: no such row).
        latest: the newest event time of all its rows (after ``checked_at`` for future-dated rows).
        version: the source's Delta version that was read.
        pushed_through: the end of the last successful incremental push of this source table and view
            definition (None: none yet; plain ``materialize`` keeps no watermark).
        pushed_version: the source version that push read.
        new_rows: a version after ``pushed_version`` adds rows (OPTIMIZE or a property change does not).
        checked_at: the time the ages are measured from.
    """

    view: str
    ttl: timedelta | None
    online: bool
    newest: datetime | None
    latest: datetime | None
    version: int
    pushed_through: datetime | None
    pushed_version: int | None
    new_rows: bool
    checked_at: datetime

    @property
    def age(self) -> timedelta | None:
        """How old the newest row is."""
        return None if self.newest is None else self.checked_at - self.newest

    @property
    def stale(self) -> bool:
        """No row within the ttl before ``checked_at`` (a view with unlimited ttl is never stale)."""
        return self.ttl is not None and (self.age is None or self.age > self.ttl)

    @property
    def versions_behind(self) -> int | None:
        """Delta versions the last incremental push did not read (None: no push)."""
        return None if self.pushed_version is None else max(self.version - self.pushed_version, 0)

    @property
    def lag(self) -> timedelta | None:
        """How far the latest row is past the time the last push reached (zero when it is not)."""
        if self.latest is None or self.pushed_through is None:
            return None
        return max(self.latest - self.pushed_through, timedelta(0))

    @property
    def behind(self) -> bool:
        """Redis may lack rows Delta has: an online view with rows and no incremental push of this
        table and definition, a later version that adds rows, or rows past the push's end."""
        if not self.online or self.latest is None:
            return False
        return self.pushed_version is None or self.new_rows or bool(self.lag)

    def summary(self) -> str:
        ttl = "unlimited" if self.ttl is None else _span(self.ttl)
        if self.newest is None:
            text = f"{self.view}: no rows up to {_iso(self.checked_at)} (ttl {ttl}), version {self.version}"
        else:
            text = (f"{self.view}: newest {_iso(self.newest)}, age {_span(self.age)} (ttl {ttl}), "
                    f"version {self.version}")
        if self.latest is not None and self.latest > self.checked_at:
            text += f", rows up to {_iso(self.latest)} after it"
        if self.stale:
            text += "; STALE"
        if not self.online:
            return text + "; offline only"
        if self.pushed_version is None:
            return text + "; no incremental push of this table and definition" + ("; BEHIND" if self.behind else "")
        text += f"; pushed through {_iso(self.pushed_through)} at version {self.pushed_version}"
        if self.behind:
            adds = "adding rows" if self.new_rows else "none adding rows"
            text += (f"; BEHIND: {self.versions_behind} newer version(s), {adds}; "
                     f"{_span(self.lag or timedelta(0))} of event time past the push")
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
    now = datetime.now(timezone.utc) if now is None else utc(now)
    versions = [delta_io.latest_version(spark, v.source.address, what=f"source of feature view '{v.name}'")
                for v in views]
    newest = _newest(spark, views, versions, now)
    marks = last_watermarks(spark, state_path, repo.project, {v.name: source_identity(spark, v) for v in views})
    out = []
    for view, version in zip(views, versions):
        mark = marks.get(view.name)
        new_rows = mark is not None and version > mark.source_version and delta_io.adds_rows(
            spark, view.source.address, mark.source_version + 1, version)
        out.append(Freshness(
            view=view.name, ttl=view.ttl, online=view.online, newest=newest[view.name][0],
            latest=newest[view.name][1], version=version, pushed_through=mark.end if mark else None,
            pushed_version=mark.source_version if mark else None, new_rows=new_rows, checked_at=now,
        ))
    return out


def _newest(
    spark: SparkSession, views: list[FeatureViewSpec], versions: list[int], now: datetime,
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Per view, the newest event time at or before ``now`` and the newest of all, in one job. As
    micros: PySpark would hand a timestamp back in the driver's local time zone."""
    if not views:
        return {}
    parts = []
    for view, version in zip(views, versions):
        raw = delta_io.read_delta(spark, view.source.address, what=f"source of feature view '{view.name}'",
                                  version=version)
        rows = read_view(spark, view, (), raw=raw)  # checks the key and timestamp columns, as the join does
        parts.append(rows.agg(
            F.unix_micros(F.max(F.when(F.col(TS) <= F.lit(now), F.col(TS)))).alias("upto"),
            F.unix_micros(F.max(TS)).alias("all"),
        ).select(F.lit(view.name).alias("view"), "upto", "all"))
    found = reduce(lambda a, b: a.unionByName(b), parts).collect()

    def instant(us: int | None) -> datetime | None:
        return None if us is None else EPOCH + timedelta(microseconds=us)

    return {r["view"]: (instant(r["upto"]), instant(r["all"])) for r in found}


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
