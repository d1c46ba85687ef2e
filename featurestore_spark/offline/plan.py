"""Choose how to run a point-in-time join, from cheap statistics, and say why.

Statistics: one aggregate over the entity rows' narrow columns, in a single Spark job:
count, null event timestamps, time range, and per key set the approximate number of
distinct keys (HyperLogLog) and the hottest key's row count (a frequent-items sketch,
``approx_top_k``, over a 64-bit hash of the keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurestore_spark.errors import NullEventTimestampError
from featurestore_spark.specs import FeatureViewSpec

#: Entity key sets with at most this many distinct keys prune the feature rows to each key's entity
#: time range (a broadcast of key -> (first, last) entity time, ~40 bytes a key): small enough to
#: broadcast, and it drops the rows of absent keys and of cold keys outside their few entity times.
KEY_PRUNE_MAX_KEYS = 2_000_000
#: A (key, bucket) group should hold at most 1/SPLIT of an average task's rows: beyond that a hot
#: key makes its task straggle. One bucket (no carry-in at all) is the cheapest plan.
SPLIT = 1
MAX_BUCKETS = 4096
MIN_BUCKET = timedelta(seconds=1)


@dataclass(frozen=True)
class GroupPlan:
    """How the views sharing one set of join keys are joined."""

    join_keys: tuple[str, ...]
    views: tuple[str, ...]
    ttls: tuple[timedelta | None, ...]
    distinct_keys: int
    hot_key_share: float
    buckets: int
    bucket_width: timedelta
    prune_keys: bool

    def _strategy(self) -> str:
        if self.buckets == 1:
            return "one bucket: one running max per key, no carry-in needed"
        return "bucketed running max + carry-in of the latest row of earlier buckets"

    def explain(self) -> str:
        ttls = ", ".join(f"{v} (ttl {t or 'unlimited'})" for v, t in zip(self.views, self.ttls))
        prune = (
            f"yes: ~{self.distinct_keys} distinct entity keys <= {KEY_PRUNE_MAX_KEYS}: feature rows are kept "
            "only within [first - ttl, last] entity time of their key (broadcast join)"
            if self.prune_keys
            else f"no: ~{self.distinct_keys} distinct entity keys > {KEY_PRUNE_MAX_KEYS}"
        )
        return (
            f"  keys ({', '.join(self.join_keys)}): {ttls}\n"
            f"    strategy: windowed range join, {self._strategy()}\n"
            f"    bucket width {self.bucket_width} ({self.buckets} bucket(s) over the entity time range): the "
            f"hottest key holds ~{self.hot_key_share:.2%} of the entity rows, so {self.buckets} bucket(s) keep "
            f"each (key, bucket) within {'an average task' if SPLIT == 1 else f'1/{SPLIT} of a task'}\n"
            f"    key pruning: {prune}"
        )


@dataclass(frozen=True)
class JoinPlan:
    """The whole plan: entity statistics and one GroupPlan per join-key set."""

    entity_rows: int
    min_us: int | None  # event-time range of the entity rows, microseconds since the epoch
    max_us: int | None
    partitions: int
    groups: tuple[GroupPlan, ...]

    def group(self, join_keys: tuple[str, ...]) -> GroupPlan:
        return next(g for g in self.groups if g.join_keys == join_keys)

    def explain(self) -> str:
        head = (
            f"point-in-time join of {self.entity_rows} entity rows, event times {_utc(self.min_us)} .. "
            f"{_utc(self.max_us)}, "
            f"{self.partitions} shuffle partitions\n"
            "  feature rows pruned to [min event time - ttl, max event time] per view (unlimited ttl: only the "
            "upper bound); rows older than the first entity row fall in the first bucket\n"
        )
        return head + "\n".join(g.explain() for g in self.groups)


def group_views(views: list[FeatureViewSpec]) -> dict[tuple[str, ...], list[FeatureViewSpec]]:
    """Views grouped by their (ordered) join keys, in first-seen order."""
    groups: dict[tuple[str, ...], list[FeatureViewSpec]] = {}
    for view in views:
        groups.setdefault(view.join_key_names, []).append(view)
    return groups


def make_plan(entity: DataFrame, ts_column: str, views: list[FeatureViewSpec], partitions: int) -> JoinPlan:
    """Gather statistics and choose bucket widths and key pruning.

    Raises:
        NullEventTimestampError: some entity rows have no event timestamp (checked first).
    """
    groups = group_views(views)
    ts = F.unix_micros(F.col(f"`{ts_column}`").cast("timestamp"))
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.count_if(ts.isNull()).alias("nulls"),
        F.min(ts).alias("lo"),
        F.max(ts).alias("hi"),
    ]
    for i, keys in enumerate(groups):
        # A hash stands for the keys (any key type, one or several columns); a collision can only
        # overstate the hottest key's share, which errs towards more buckets.
        hashed = F.xxhash64(*[F.col(f"`{k}`") for k in keys])
        top = F.call_function("approx_top_k", hashed, F.lit(1))  # [(item, count)] of the hottest key
        aggs += [F.approx_count_distinct(hashed).alias(f"d{i}"), top.alias(f"top{i}")]
    stats = entity.agg(*aggs).first()
    assert stats is not None
    if stats["nulls"]:
        raise NullEventTimestampError(column=ts_column, count=stats["nulls"])
    n, lo, hi = stats["n"], stats["lo"], stats["hi"]
    span = timedelta(microseconds=hi - lo) if n else timedelta(0)
    plans = []
    for i, (keys, members) in enumerate(groups.items()):
        top = stats[f"top{i}"]
        share = top[0]["count"] / n if n and top else 0.0
        buckets = max(1, min(MAX_BUCKETS, math.ceil(SPLIT * partitions * share)))
        width = max(MIN_BUCKET, span / buckets) if span else MIN_BUCKET
        buckets = bucket_count(lo, hi, width // timedelta(microseconds=1))
        plans.append(
            GroupPlan(
                join_keys=keys,
                views=tuple(v.name for v in members),
                ttls=tuple(v.ttl for v in members),
                distinct_keys=int(stats[f"d{i}"]),
                hot_key_share=share,
                buckets=buckets,
                bucket_width=width,
                prune_keys=0 < stats[f"d{i}"] <= KEY_PRUNE_MAX_KEYS,
            )
        )
    return JoinPlan(entity_rows=n, min_us=lo, max_us=hi, partitions=partitions, groups=tuple(plans))


def bucket_count(min_us: int | None, max_us: int | None, width_us: int) -> int:
    """Buckets of ``width_us`` microseconds that cover the entity time range (at least one)."""
    return max(1, -(-((max_us or 0) - (min_us or 0)) // max(1, width_us)))


def _utc(micros: int | None) -> str:
    if micros is None:
        return "-"
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)).isoformat()
