"""The point-in-time join, as a windowed range join (docs/semantics.md section 1).

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

Which feature rows are candidates, and how they are pruned: ``candidates.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from featurestore_spark.columns import BUCKET, KIND, PAYLOAD, VIS, output_col
from featurestore_spark.offline.candidates import KeySet, bucket, key_set, micros, ttl_micros
from featurestore_spark.offline.plan import JoinPlan, group_views
from featurestore_spark.offline.refs import ViewRequest, in_request_order

_CARRY, _FEATURE, _ENTITY = 0, 1, 2


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
        names = {(r.view.name, f): output_col(len(internal) + j) for j, (r, f) in enumerate(_pairs(group))}
        internal.update(names)
        ks = key_set(entity, ts_column, group, frames, plan, plan.group(keys), filter_by_created_timestamp)
        latest = _running_max(out, entity, ts_column, ks, plan)
        out = latest.select(F.col(f"{PAYLOAD}.*"), *_outputs(group, list(ks.rows), names))
    features = [F.col(internal[(r.view.name, f)]).alias(name) for r, f, name in in_request_order(requests)]
    return out.select(*[F.col(f"`{c}`") for c in entity.columns], *features)


def _pairs(group: list[ViewRequest]) -> list[tuple[ViewRequest, str]]:
    return [(r, f) for r in group for f in r.features]


def _outputs(group: list[ViewRequest], ws: list[str], names: dict[tuple[str, str], str]) -> list[Column]:
    """The requested features of each view's winner (a ranking struct per entity row, at ``__vis``),
    null where there is none or it is older than the view's ttl. The winner has the greatest event
    time among all candidates, so if it is too old, all are."""
    outputs = []
    for r, w in zip(group, ws):
        win = F.col(w)
        fresh = win.isNotNull()
        if r.view.ttl is not None:
            fresh = win["ts"] >= F.col(VIS) - F.lit(ttl_micros(r.view.ttl))
        outputs += [F.when(fresh, win["f"].getField(f)).alias(names[(r.view.name, f)]) for f in r.features]
    return outputs


def _running_max(current: DataFrame, entity: DataFrame, ts_column: str, ks: KeySet, plan: JoinPlan) -> DataFrame:
    """The windowed range join: per entity row its payload (``current`` whole, as a struct), ``__vis``
    and the running ``max`` of each win at that time."""
    keys, buckets, width = ks.keys, ks.buckets, ks.width_us
    e_us = micros(F.col(f"`{ts_column}`"))
    entity_bucket = bucket(e_us, plan, buckets, width)
    checked_us = checked_micros(ts_column, plan)
    # ``current`` is the entity rows with the features of earlier key sets, carried whole through
    # this key set's shuffle (joining a row id back instead measured slower). It is read once, by
    # the union; everything else derives from the original ``entity``, so no earlier join reruns.
    ents = current.select(
        *ks.entity_keys, entity_bucket, checked_us.alias(VIS), F.lit(_ENTITY).alias(KIND),
        F.struct(*[F.col(f"`{c}`") for c in current.columns]).alias(PAYLOAD),
    )
    bucket_maxima = []
    if buckets > 1:  # the last bucket never feeds a carry-in
        for w, rows in ks.rows.items():
            maxima = rows.where(F.col(BUCKET) < buckets - 1).groupBy(*keys, BUCKET)
            bucket_maxima.append(maxima.agg(F.max(w).alias(w)))
    win_types = {w: rows.schema[w].dataType for w, rows in ks.rows.items()}

    payload_type = ents.schema[PAYLOAD].dataType
    parts = [_shape(ents, keys, win_types, payload_type)]
    parts += [_shape(rows.withColumn(KIND, F.lit(_FEATURE)), keys, win_types, payload_type) for rows in ks.rows.values()]
    if bucket_maxima:
        carry = _carry_in(entity.select(*ks.entity_keys, entity_bucket).distinct(), bucket_maxima, keys, win_types)
        parts.append(_shape(carry.withColumn(KIND, F.lit(_CARRY)), keys, win_types, payload_type))
    union = reduce(DataFrame.unionByName, parts)

    running = (
        Window.partitionBy(*keys, BUCKET)
        .orderBy(F.col(VIS).asc_nulls_first(), F.col(KIND))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return union.select(VIS, KIND, PAYLOAD, *[F.max(w).over(running).alias(w) for w in win_types]).where(
        F.col(KIND) == _ENTITY
    )


def checked_micros(ts_column: str, plan: JoinPlan) -> Column:
    """The entity rows' event time in micros, failing the job at a row outside the time range the
    plan's statistics saw (at any row, if they saw none).

    The plan (the feature rows' time pruning above all) holds for the entity rows it saw. If they
    changed before the join runs (a table appended to between the call and the action, or
    ``current_timestamp()``), a row could silently miss its features: the job fails instead.
    """
    e_us = micros(F.col(f"`{ts_column}`"))
    seen = f"rows from {_utc_text(plan.min_us)} to {_utc_text(plan.max_us)}" if plan.entity_rows else "no rows"
    # No rows: an empty range, that every time is outside (a condition on the row, which Spark cannot fold).
    lo, hi = (plan.min_us, plan.max_us) if plan.entity_rows else (2**63 - 1, -(2**63))
    outside = e_us.isNull() | (e_us < F.lit(lo)) | (e_us > F.lit(hi))
    utc = F.to_utc_timestamp(F.timestamp_micros(e_us), F.current_timezone())  # shown in UTC whatever the session's
    row_time = F.coalesce(F.concat(F.date_format(utc, "yyyy-MM-dd HH:mm:ss.SSSSSS"), F.lit("+00:00")), F.lit("null"))
    message = F.concat(
        F.lit(f"the entity rows changed after get_historical_features planned the join: a row has {ts_column} = "),
        row_time,
        F.lit(f", but the plan saw {seen}; the entity rows must be the same at the action as at the call: pass a "
              "Delta path or table name (read at its version at the call), or a DataFrame that reads no table "
              "being appended to and uses a literal time rather than current_timestamp(), then call "
              "get_historical_features again"),
    )
    return F.when(outside, F.raise_error(message)).otherwise(e_us)


def _utc_text(us: int | None) -> str:
    return (datetime.fromtimestamp(0, timezone.utc) + timedelta(microseconds=us or 0)).isoformat(" ", "microseconds")


def _carry_in(
    entity_buckets: DataFrame, bucket_maxima: list[DataFrame], keys: tuple[str, ...], win_types: dict
) -> DataFrame:
    """Per (key, bucket) of the entity side: the latest feature row of that key in any earlier bucket."""
    no_values = [F.lit(None).cast(t).alias(w) for w, t in win_types.items()]
    parts = [entity_buckets.select(*keys, BUCKET, F.lit(_CARRY).alias(KIND), *no_values)]
    for maxima in bucket_maxima:
        present = set(maxima.columns)
        parts.append(
            maxima.select(
                *keys, BUCKET, F.lit(_FEATURE).alias(KIND),
                *[(F.col(w) if w in present else F.lit(None).cast(t)).alias(w) for w, t in win_types.items()],
            )
        )
    union = reduce(DataFrame.unionByName, parts)
    # Entity markers sort before a feature maximum of the same bucket: the frame ends just before
    # the marker, so only strictly earlier buckets count.
    earlier = Window.partitionBy(*keys).orderBy(BUCKET, KIND).rowsBetween(Window.unboundedPreceding, -1)
    return union.select(
        *keys, BUCKET, KIND, *[F.max(w).over(earlier).alias(w) for w in win_types]
    ).where(F.col(KIND) == _CARRY).drop(KIND)


def _shape(df: DataFrame, keys: tuple[str, ...], win_types: dict, payload_type) -> DataFrame:
    """Project one part of the union onto the common schema (missing columns as typed nulls)."""
    present = set(df.columns)

    def col(name: str, dtype) -> Column:
        return F.col(name) if name in present else F.lit(None).cast(dtype)

    return df.select(
        *keys,
        BUCKET,
        col(VIS, "bigint").alias(VIS),
        F.col(KIND).cast("int").alias(KIND),
        col(PAYLOAD, payload_type).alias(PAYLOAD),
        *[col(w, t).alias(w) for w, t in win_types.items()],
    )
