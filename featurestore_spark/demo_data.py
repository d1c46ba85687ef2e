"""Generate the example repo's Delta tables and entity rows, at any size, with Spark.

The data is shaped like real feature data where it matters to a point-in-time join:
Zipf-skewed keys (a few hot drivers and customers), corrections (a row re-issued with the
same event time and a later created time), nulls, and every Feast type the engine supports.
All randomness is a hash of the row number and a seed, so a run is reproducible.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _u(seed: int, salt: str) -> Column:
    """A uniform [0, 1) number from the row id, the seed and a salt."""
    h = F.xxhash64(F.col("id"), F.lit(seed), F.lit(salt))
    return (F.pmod(h, F.lit(1 << 30)) / F.lit(float(1 << 30))).cast("double")


def _zipf_key(seed: int, salt: str, n: int, s: float) -> Column:
    """A key in [1, n] with P(k) ~ k^-s (inverse CDF of the continuous Zipf law); s=0 is uniform."""
    u = _u(seed, salt)
    if s == 1.0:
        x = F.pow(F.lit(float(n + 1)), u)
    else:
        a = 1.0 - s
        x = F.pow(F.lit(1.0) + u * F.lit((n + 1) ** a - 1.0), F.lit(1.0 / a))
    return F.least(F.floor(x), F.lit(n)).cast("bigint")


def _ts(seed: int, salt: str, start: datetime, days: float) -> Column:
    seconds = F.floor(_u(seed, salt) * F.lit(days * 86400.0))
    return F.timestamp_seconds(F.lit(int(start.timestamp())) + seconds)


def _null_some(col: Column, seed: int, salt: str, share: float) -> Column:
    return F.when(_u(seed, salt) >= share, col)


def _with_corrections(df: DataFrame, seed: int, share: float, changed: dict[str, Column]) -> DataFrame:
    """Append re-issued copies of a share of rows: same keys and event time, created later, new values."""
    fixes = df.where(_u(seed, "correction") < share)
    fixes = fixes.withColumn("created", F.col("created") + F.expr("INTERVAL 2 HOURS"))
    for name, value in changed.items():
        fixes = fixes.withColumn(name, value)
    return df.unionByName(fixes)


#: Zipf exponents of the keys: training events concentrate on hot drivers and customers (s=1);
#: feature tables get one update stream per entity (uniform keys) unless ``feature_skew`` says otherwise.
ENTITY_SKEW = 1.0
FEATURE_SKEW = 0.0


def driver_id_col(seed: int, n_entities: int, skew: float = FEATURE_SKEW) -> Column:
    return _zipf_key(seed, "driver", n_entities, skew) + F.lit(1000)


def customer_id_col(seed: int, n_entities: int, skew: float = FEATURE_SKEW) -> Column:
    return F.format_string("C%07d", _zipf_key(seed, "customer", n_entities, skew))


def driver_hourly_stats(
    spark: SparkSession, rows: int, n_entities: int, seed: int, start: datetime, days: float,
    skew: float = FEATURE_SKEW,
) -> DataFrame:
    base = spark.range(rows).select(
        F.col("id"),
        driver_id_col(seed, n_entities, skew).alias("driver_id"),
        _ts(seed, "ts", start, days).alias("event_timestamp"),
    )
    df = base.select(
        "id",
        "driver_id",
        "event_timestamp",
        (F.col("event_timestamp") + F.expr("INTERVAL 5 MINUTES")).alias("created"),
        _null_some(_u(seed, "conv").cast("float"), seed, "conv_null", 0.03).alias("conv_rate"),
        _u(seed, "acc").alias("acc_rate"),
        F.floor(_u(seed, "trips") * 40).cast("bigint").alias("avg_daily_trips"),
        _null_some(F.array(_u(seed, "r1") * 5, _u(seed, "r2") * 5), seed, "rh_null", 0.05).alias("rating_history"),
    )
    df = _with_corrections(df, seed, 0.02, {"conv_rate": _u(seed + 1, "conv").cast("float")})
    return df.drop("id")


def customer_profile(
    spark: SparkSession, rows: int, n_entities: int, seed: int, start: datetime, days: float,
    skew: float = FEATURE_SKEW,
) -> DataFrame:
    base = spark.range(rows).select(
        F.col("id"),
        customer_id_col(seed, n_entities, skew).alias("customer_id"),
        _ts(seed, "cts", start, days).alias("event_timestamp"),
    )
    df = base.select(
        "id",
        "customer_id",
        "event_timestamp",
        (F.col("event_timestamp") + F.expr("INTERVAL 1 MINUTE")).alias("created"),
        (_u(seed, "bal") * 500).cast("float").alias("current_balance"),
        F.floor(_u(seed, "ltc") * 1000).cast("int").alias("lifetime_trip_count"),
        _null_some(_u(seed, "prem") < 0.2, seed, "prem_null", 0.02).alias("is_premium"),
        F.element_at(F.array(*map(F.lit, ["commuter", "tourist", "business", "student"])),
                     (F.floor(_u(seed, "seg") * 4) + 1).cast("int")).alias("segment"),
        F.timestamp_seconds(F.lit(int(start.timestamp())) - F.floor(_u(seed, "signup") * 3e7).cast("bigint")).alias("signup_ts"),
        _null_some(F.unhex(F.substring(F.sha2(F.col("id").cast("string"), 256), 1, 16)), seed, "av_null", 0.1)
        .alias("avatar_hash"),
        F.array(F.format_string("Z%02d", F.floor(_u(seed, "z1") * 50).cast("int")),
                F.format_string("Z%02d", F.floor(_u(seed, "z2") * 50).cast("int"))).alias("favourite_zones"),
    )
    df = _with_corrections(df, seed, 0.02, {"current_balance": (_u(seed + 1, "bal") * 500).cast("float")})
    return df.drop("id")


def driver_customer_stats(
    spark: SparkSession, rows: int, n_entities: int, seed: int, start: datetime, days: float,
    skew: float = FEATURE_SKEW,
) -> DataFrame:
    base = spark.range(rows).select(
        F.col("id"),
        driver_id_col(seed, n_entities, skew).alias("driver_id"),
        customer_id_col(seed, n_entities, skew).alias("customer_id"),
        _ts(seed, "pts", start, days).alias("event_timestamp"),
    )
    return base.select(
        "driver_id",
        "customer_id",
        "event_timestamp",
        F.floor(_u(seed, "tt") * 100).cast("bigint").alias("trips_together_cnt"),
        _null_some(_u(seed, "apr") * 5, seed, "apr_null", 0.05).alias("avg_pair_rating"),
        F.array(F.col("id"), F.col("id") + 1).alias("recent_trip_ids"),
    )


def entity_rows(spark: SparkSession, rows: int, n_entities: int, seed: int, start: datetime, days: float) -> DataFrame:
    """Entity rows to train on: driver and customer keys, an event timestamp and a label."""
    s = seed + 7919
    return spark.range(rows).select(
        driver_id_col(s, n_entities, ENTITY_SKEW).alias("driver_id"),
        customer_id_col(s, n_entities, ENTITY_SKEW).alias("customer_id"),
        _ts(s, "ets", start, days).alias("event_timestamp"),
        (_u(s, "label") < 0.3).cast("int").alias("label"),
    )


TABLES = {
    "driver_hourly_stats": driver_hourly_stats,
    "customer_profile": customer_profile,
    "driver_customer_stats": driver_customer_stats,
}


def write_demo_data(
    spark: SparkSession,
    out_dir: str,
    *,
    rows: int = 100_000,
    entity_rows_count: int | None = None,
    n_entities: int = 10_000,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    days: float = 30.0,
    feature_skew: float = FEATURE_SKEW,
) -> dict[str, str]:
    """Write the three feature tables and an ``entities`` table as Delta under ``out_dir``.

    Args:
        spark: the session.
        out_dir: folder (or URI) for the tables.
        rows: rows per feature table (before corrections, which add about 2%).
        entity_rows_count: rows of the entity table (default: ``rows``).
        n_entities: distinct drivers and customers (keys are Zipf-distributed over them).
        seed: randomness seed.
        start, days: the time span of event timestamps.
        feature_skew: Zipf exponent of the feature tables' keys (0: uniform, one update stream per
            entity; above 0: hot entities also update more often).

    Returns:
        Table name -> path.
    """
    paths = {}
    for name, make in TABLES.items():
        path = f"{out_dir.rstrip('/')}/{name}"
        # The change data feed lets incremental materialization find rows appended late.
        make(spark, rows, n_entities, seed, start, days, feature_skew).write.format("delta").mode("overwrite").option(
            "delta.enableChangeDataFeed", "true"
        ).save(path)
        paths[name] = path
    path = f"{out_dir.rstrip('/')}/entities"
    entity_rows(spark, entity_rows_count or rows, n_entities, seed, start, days).write.format("delta").mode(
        "overwrite"
    ).save(path)
    paths["entities"] = path
    return paths
