"""The feature rows of one key set that can win for some entity row (the join's candidates).

Per view: rows within [first entity time - ttl, last entity time]; with key pruning also within that
range *of their own key* (a broadcast of key -> first and last entity time), which drops the rows of
keys the entity side lacks. Each row carries its keys, its bucket, its visibility
time (event time, or with ``filter_by_created_timestamp`` the later of event and created time) and its
ranking struct (``sources.ranking``), whose ``max`` is the winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from featurestore_spark.columns import BUCKET, CREATED, HI, LO, TS, VIS, WINNER, key_col, winner_col
from featurestore_spark.offline.plan import GroupPlan, JoinPlan, bucket_count
from featurestore_spark.offline.refs import ViewRequest
from featurestore_spark.sources import ranking
from featurestore_spark.specs import FieldSpec


@dataclass(frozen=True, kw_only=True)
class KeySet:
    """One key set's side of the join: entity key columns, buckets, and each view's candidate rows."""

    keys: tuple[str, ...]            # __k0.. in the candidates and in ``entity_keys``' aliases
    entity_keys: tuple[Column, ...]  # the entity's join-key columns, cast to the views' key types
    buckets: int
    width_us: int
    rows: dict[str, DataFrame]       # win column (__w0.., in view order) -> that view's candidates


def micros(col: Column) -> Column:
    """Microseconds since the epoch of a timestamp column."""
    return F.unix_micros(col.cast("timestamp"))


def join_type(key: FieldSpec) -> str:
    """The type a join key is compared in: integer keys as bigint on both sides, so that an entity value
    the declared INT32 cannot hold matches nothing rather than overflowing (or, ANSI off, wrapping)."""
    return "bigint" if key.dtype in ("INT32", "INT64") else key.spark_type


def ttl_micros(ttl: timedelta) -> int:
    return ttl // timedelta(microseconds=1)


def bucket(us: Column, plan: JoinPlan, buckets: int, width: int) -> Column:
    """Bucket index on a grid starting at the earliest entity time; earlier rows fall in bucket 0
    (every entity row is later than them), rows at the very end in the last bucket."""
    raw = F.floor((us - F.lit(plan.min_us)) / F.lit(width))
    return F.least(F.greatest(raw, F.lit(0)), F.lit(buckets - 1)).cast("int").alias(BUCKET)


def key_set(
    entity: DataFrame,
    ts_column: str,
    group: list[ViewRequest],
    frames: dict[str, DataFrame],
    plan: JoinPlan,
    gplan: GroupPlan,
    by_created: bool,
) -> KeySet:
    """The candidates of every view of one key set (lazy); the ranking struct of the i-th view is ``__w{i}``."""
    keys = tuple(key_col(i) for i in range(len(gplan.join_keys)))
    width = max(1, gplan.bucket_width // timedelta(microseconds=1))
    buckets = bucket_count(plan.min_us, plan.max_us, width)
    types = [join_type(k) for k in group[0].view.join_keys]
    entity_keys = tuple(F.col(f"`{k}`").cast(t).alias(kc) for k, t, kc in zip(gplan.join_keys, types, keys))
    ranges = None
    if gplan.prune_keys:
        # Each key's entity time range, broadcast: feature rows of keys the entity side lacks, or
        # outside [first entity time - ttl, last entity time] of their key, can never win.
        e_us = micros(F.col(f"`{ts_column}`"))
        ranges = F.broadcast(
            entity.select(*entity_keys, e_us.alias(LO)).groupBy(*keys).agg(
                F.min(LO).alias(LO), F.max(LO).alias(HI)
            )
        )
    rows = {
        winner_col(i): _candidates(frames[r.view.name], r, keys, plan, buckets, width, by_created, ranges)
        .withColumnRenamed(WINNER, winner_col(i))
        for i, r in enumerate(group)
    }
    return KeySet(keys=keys, entity_keys=entity_keys, buckets=buckets, width_us=width, rows=rows)


def _candidates(
    frame: DataFrame,
    request: ViewRequest,
    keys: tuple[str, ...],
    plan: JoinPlan,
    buckets: int,
    width: int,
    by_created: bool,
    key_ranges: DataFrame | None,
) -> DataFrame:
    """Feature rows that can win: keys, bucket, visibility time and ranking struct."""
    ts, created = F.col(TS), F.col(CREATED)
    # Pruning on the timestamp itself (not its micros) lets Delta skip files by their statistics.
    rows = frame.where(ts <= F.timestamp_micros(F.lit(plan.max_us)))
    if request.view.ttl is not None:
        rows = rows.where(ts >= F.timestamp_micros(F.lit(plan.min_us - ttl_micros(request.view.ttl))))
    for k, key in zip(keys, request.view.join_keys):
        rows = rows.where(F.col(k).isNotNull()).withColumn(k, F.col(k).cast(join_type(key)))
    rows = rows.where(ts.isNotNull())
    visible = ts
    if by_created and request.view.source.created_timestamp_column:
        # "As known at": a row counts once it was both in effect and recorded.
        rows = rows.where(created.isNotNull() & (created <= F.timestamp_micros(F.lit(plan.max_us))))
        visible = F.greatest(ts, created)
    if key_ranges is not None:
        rows = rows.join(key_ranges, on=list(keys), how="inner").where(micros(visible) <= F.col(HI))
        if request.view.ttl is not None:
            rows = rows.where(micros(ts) >= F.col(LO) - F.lit(ttl_micros(request.view.ttl)))
    vis = micros(visible)
    return rows.select(*keys, bucket(vis, plan, buckets, width), vis.alias(VIS), ranking(request.features).alias(WINNER))
