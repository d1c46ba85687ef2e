"""The point-in-time join, as a windowed range join (SEMANTICS.md section 1).

For each set of join keys, time is cut into buckets of width W. Every entity row, every
candidate feature row and one *carry-in* row per (key, bucket) of the entity side go into
one union, partitioned by (key, bucket) and ordered by time; a running ``max`` of the
feature row's ranking struct, read at each entity row, is the latest feature row at or
before it. The carry-in is the latest row of that key in any earlier bucket, found by a
second, much smaller running max over per-(key, bucket) maxima. Nothing is multiplied: each
feature row is shuffled once, whatever the key's heat, and a hot key is spread over its
buckets. TTL is a filter on the winner (the winner has the greatest event time among all
candidates, so if it is too old, all are), which is why long and unlimited TTLs cost nothing.

Ranking struct, greatest wins: (event time, created-is-not-null, created, tie hash,
requested features...). A row is visible to an entity row at time t when its event time
is <= t and, with ``filter_by_created_timestamp``, its created time is also <= t; it is put
in the bucket of that visibility time, so a bucket's carry-in is visible to all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from featurestore_spark.offline.plan import GroupPlan, JoinPlan, bucket_count, group_views
from featurestore_spark.offline.sources import CREATED, TS, key_col, ranking
from featurestore_spark.specs import FeatureViewSpec

_CARRY, _FEATURE, _ENTITY = 0, 1, 2
_BUCKET, _VIS, _KIND, _PAYLOAD = "__bucket", "__vis", "__kind", "__entity"


@dataclass(frozen=True)
class ViewRequest:
    """The features wanted from one view, and their output column names."""

    view: FeatureViewSpec
    features: tuple[str, ...]
    output_names: tuple[str, ...]


def point_in_time_join(
    entity: DataFrame,
    ts_column: str,
    requests: list[ViewRequest],
    frames: dict[str, DataFrame],
    plan: JoinPlan,
    *,
    filter_by_created_timestamp: bool = False,
) -> DataFrame:
    """Join ``requests`` onto ``entity`` point-in-time correctly; lazy, nothing collected.

    Args:
        entity: the entity rows (checked by ``entity_input.check_entity_df``).
        ts_column: its event-timestamp column.
        requests: one per view, in output order.
        frames: view name -> the view's rows in normal form (``sources.read_view``).
        plan: from ``plan.make_plan`` on the same entity rows.
        filter_by_created_timestamp: also require created time <= entity time.

    Returns:
        The entity columns unchanged and in order, then every requested feature.
    """
    by_view = {r.view.name: r for r in requests}
    internal: dict[tuple[str, str], str] = {}
    out = entity
    for keys, views in group_views([r.view for r in requests]).items():
        group = [by_view[v.name] for v in views]
        names = {(r.view.name, f): f"__f{len(internal) + j}" for j, (r, f) in enumerate(_pairs(group))}
        internal.update(names)
        out = _join_group(out, entity, ts_column, group, frames, plan, plan.group(keys), names, filter_by_created_timestamp)
    features = [
        F.col(internal[(r.view.name, f)]).alias(name) for r in requests for f, name in zip(r.features, r.output_names)
    ]
    return out.select(*[F.col(f"`{c}`") for c in entity.columns], *features)


def _pairs(group: list[ViewRequest]) -> list[tuple[ViewRequest, str]]:
    return [(r, f) for r in group for f in r.features]


def _micros(col: Column) -> Column:
    return F.unix_micros(col.cast("timestamp"))


def _join_group(
    current: DataFrame,
    entity: DataFrame,
    ts_column: str,
    group: list[ViewRequest],
    frames: dict[str, DataFrame],
    plan: JoinPlan,
    gplan: GroupPlan,
    names: dict[tuple[str, str], str],
    by_created: bool,
) -> DataFrame:
    keys = [key_col(i) for i in range(len(gplan.join_keys))]
    width = max(1, gplan.bucket_width // timedelta(microseconds=1))
    buckets = bucket_count(plan.min_us, plan.max_us, width)
    e_us = _micros(F.col(f"`{ts_column}`"))
    key_types = [k.spark_type for k in group[0].view.join_keys]
    entity_keys = [F.col(f"`{k}`").cast(t).alias(kc) for k, t, kc in zip(gplan.join_keys, key_types, keys)]
    bucket = _bucket(e_us, plan, buckets, width)
    # ``current`` is the entity rows with the features of earlier key sets, carried whole through
    # this key set's shuffle (joining a row id back instead measured slower). It is read once, by
    # the union; everything else derives from the original ``entity``, so no earlier join reruns.
    ents = current.select(
        *entity_keys, bucket, e_us.alias(_VIS), F.lit(_ENTITY).alias(_KIND),
        F.struct(*[F.col(f"`{c}`") for c in current.columns]).alias(_PAYLOAD),
    )
    key_ranges = None
    if gplan.prune_keys:
        # Each key's entity time range, broadcast: feature rows of keys the entity side lacks, or
        # outside [first entity time - ttl, last entity time] of their key, can never win.
        key_ranges = F.broadcast(
            entity.select(*entity_keys, e_us.alias("__lo")).groupBy(*keys).agg(
                F.min("__lo").alias("__lo"), F.max("__lo").alias("__hi")
            )
        )
    wins = {r.view.name: f"__w{i}" for i, r in enumerate(group)}
    feature_rows, bucket_maxima = [], []
    for r in group:
        rows = _candidates(frames[r.view.name], r, keys, plan, buckets, width, by_created, key_ranges)
        feature_rows.append(rows.withColumnRenamed("__w", wins[r.view.name]))
        if buckets > 1:  # the last bucket never feeds a carry-in
            maxima = rows.where(F.col(_BUCKET) < buckets - 1).groupBy(*keys, _BUCKET)
            bucket_maxima.append(maxima.agg(F.max("__w").alias(wins[r.view.name])))
    win_types = {w: f.schema[w].dataType for w, f in zip(wins.values(), feature_rows)}

    payload_type = ents.schema[_PAYLOAD].dataType
    parts = [_shape(ents, keys, win_types, payload_type)]
    parts += [_shape(rows.withColumn(_KIND, F.lit(_FEATURE)), keys, win_types, payload_type) for rows in feature_rows]
    if bucket_maxima:
        carry = _carry_in(entity.select(*entity_keys, bucket).distinct(), bucket_maxima, keys, win_types)
        parts.append(_shape(carry.withColumn(_KIND, F.lit(_CARRY)), keys, win_types, payload_type))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)

    running = (
        Window.partitionBy(*keys, _BUCKET)
        .orderBy(F.col(_VIS).asc_nulls_first(), F.col(_KIND))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    latest = union.select(_VIS, _KIND, _PAYLOAD, *[F.max(w).over(running).alias(w) for w in win_types]).where(
        F.col(_KIND) == _ENTITY
    )
    outputs = []
    for r in group:
        win = F.col(wins[r.view.name])
        fresh = win.isNotNull()
        if r.view.ttl is not None:
            fresh = win["ts"] >= F.col(_VIS) - F.lit(int(r.view.ttl.total_seconds() * 1_000_000))
        outputs += [F.when(fresh, win[f]).alias(names[(r.view.name, f)]) for f in r.features]
    return latest.select(F.col(f"{_PAYLOAD}.*"), *outputs)


def _bucket(micros: Column, plan: JoinPlan, buckets: int, width: int) -> Column:
    """Bucket index on a grid starting at the earliest entity time; earlier rows fall in bucket 0
    (every entity row is later than them), rows at the very end in the last bucket."""
    raw = F.floor((micros - F.lit(plan.min_us)) / F.lit(width))
    return F.least(F.greatest(raw, F.lit(0)), F.lit(buckets - 1)).cast("int").alias(_BUCKET)


def _candidates(
    frame: DataFrame,
    request: ViewRequest,
    keys: list[str],
    plan: JoinPlan,
    buckets: int,
    width: int,
    by_created: bool,
    key_ranges: DataFrame | None,
) -> DataFrame:
    """Feature rows that can win for some entity row: keys, bucket, visibility time and ranking struct."""
    ts, created = F.col(TS), F.col(CREATED)
    # Pruning on the timestamp itself (not its micros) lets Delta skip files by their statistics.
    rows = frame.where(ts <= F.timestamp_micros(F.lit(plan.max_us)))
    if request.view.ttl is not None:
        ttl_us = int(request.view.ttl.total_seconds() * 1_000_000)
        rows = rows.where(ts >= F.timestamp_micros(F.lit(plan.min_us - ttl_us)))
    for k in keys:
        rows = rows.where(F.col(k).isNotNull())
    rows = rows.where(ts.isNotNull())
    visible = ts
    if by_created and request.view.source.created_timestamp_column:
        # "As known at": a row counts once it was both in effect and recorded.
        rows = rows.where(created.isNotNull() & (created <= F.timestamp_micros(F.lit(plan.max_us))))
        visible = F.greatest(ts, created)
    if key_ranges is not None:
        rows = rows.join(key_ranges, on=keys, how="inner").where(_micros(visible) <= F.col("__hi"))
        if request.view.ttl is not None:
            rows = rows.where(_micros(ts) >= F.col("__lo") - F.lit(request.view.ttl // timedelta(microseconds=1)))
    vis = _micros(visible)
    return rows.select(*keys, _bucket(vis, plan, buckets, width), vis.alias(_VIS), ranking(request.features).alias("__w"))


def _carry_in(
    entity_buckets: DataFrame, bucket_maxima: list[DataFrame], keys: list[str], win_types: dict
) -> DataFrame:
    """Per (key, bucket) of the entity side: the latest feature row of that key in any earlier bucket."""
    parts = [entity_buckets.select(*keys, _BUCKET, F.lit(_CARRY).alias(_KIND), *[F.lit(None).cast(t).alias(w) for w, t in win_types.items()])]
    for maxima in bucket_maxima:
        present = set(maxima.columns)
        parts.append(
            maxima.select(
                *keys, _BUCKET, F.lit(_FEATURE).alias(_KIND),
                *[(F.col(w) if w in present else F.lit(None).cast(t)).alias(w) for w, t in win_types.items()],
            )
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    # Entity markers sort before a feature maximum of the same bucket: the frame ends just before
    # the marker, so only strictly earlier buckets count.
    earlier = Window.partitionBy(*keys).orderBy(_BUCKET, _KIND).rowsBetween(Window.unboundedPreceding, -1)
    return union.select(
        *keys, _BUCKET, _KIND, *[F.max(w).over(earlier).alias(w) for w in win_types]
    ).where(F.col(_KIND) == _CARRY).drop(_KIND)


def _shape(df: DataFrame, keys: list[str], win_types: dict, payload_type) -> DataFrame:
    """Project one part of the union onto the common schema (missing columns as typed nulls)."""
    present = set(df.columns)

    def col(name: str, dtype) -> Column:
        return F.col(name) if name in present else F.lit(None).cast(dtype)

    return df.select(
        *keys,
        _BUCKET,
        col(_VIS, "bigint").alias(_VIS),
        F.col(_KIND).cast("int").alias(_KIND),
        col(_PAYLOAD, payload_type).alias(_PAYLOAD),
        *[col(w, t).alias(w) for w, t in win_types.items()],
    )
