"""Small builders shared by the tests: specs over Delta tables written from pandas."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pandas as pd

from featurestore_spark.specs import FeatureViewSpec, FieldSpec, RepoSpec, SourceSpec

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

#: Every feature of the example repo (feature_repo/), in view order.
EXAMPLE_FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "driver_hourly_stats:rating_history",
    "customer_profile:current_balance",
    "customer_profile:lifetime_trip_count",
    "customer_profile:is_premium",
    "customer_profile:segment",
    "customer_profile:signup_ts",
    "customer_profile:avatar_hash",
    "customer_profile:favourite_zones",
    "driver_customer_stats:trips_together",
    "driver_customer_stats:avg_pair_rating",
    "driver_customer_stats:recent_trip_ids",
]



def minutes(n: float | None) -> datetime | None:
    return None if n is None else T0 + timedelta(minutes=n)


def write_delta(spark, pdf: pd.DataFrame, path: str, schema: str) -> str:
    spark.createDataFrame(pdf, schema=schema).write.format("delta").mode("overwrite").save(path)
    return path


def view_spec(
    name: str,
    path: str,
    keys: dict[str, str],
    features: dict[str, str],
    *,
    ttl: timedelta | None = None,
    created: str | None = None,
    field_mapping: tuple[tuple[str, str], ...] = (),
) -> FeatureViewSpec:
    return FeatureViewSpec(
        name=name,
        join_keys=tuple(FieldSpec(name=k, dtype=t) for k, t in keys.items()),
        features=tuple(FieldSpec(name=f, dtype=t) for f, t in features.items()),
        source=SourceSpec(
            name=f"{name}_source", path=path, timestamp_field="ts", created_timestamp_column=created,
            field_mapping=field_mapping,
        ),
        ttl=ttl,
    )


def repo_of(*views: FeatureViewSpec) -> RepoSpec:
    return RepoSpec(project="test", repo_path=".", views={v.name: v for v in views})


def oracle_latest(spark, path: str, keys: list[str], end: datetime) -> pd.DataFrame:
    """Independent reference: pandas sort of the whole (small) table."""
    df = spark.read.format("delta").load(path).toPandas()
    df = df[df["event_timestamp"] <= end.replace(tzinfo=None)]
    order = ["event_timestamp"] + (["created"] if "created" in df else [])
    return df.sort_values(order).groupby(keys, as_index=False).tail(1).set_index(keys)


def same(a, b) -> bool:
    if hasattr(a, "tolist"):
        a = a.tolist()
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None
    if isinstance(a, float):
        return b is not None and math.isclose(a, b, rel_tol=1e-6)
    return a == b


def vacuum_everything(spark, path: str) -> None:
    """VACUUM with zero retention: every file the current version does not use is deleted."""
    from delta.tables import DeltaTable

    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(check, "true")
    spark.conf.set(check, "false")
    try:
        DeltaTable.forPath(spark, path).vacuum(0)
    finally:
        spark.conf.set(check, before)


def apply_feast_repo(repo, project: str, port: int, db: int):
    """Write a feature_store.yaml (Redis on loopback, database ``db``, flushed), run Feast's apply on the
    repo's definitions, and return the ``feast.FeatureStore``."""
    import feast
    import redis

    from featurestore_spark.repo import _import_definitions

    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nregistry: {repo}/registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: \"127.0.0.1:{port},db={db}\"\n"
        "entity_key_serialization_version: 3\n"
    )
    redis.Redis(port=port, db=db).flushdb()
    fs = feast.FeatureStore(repo_path=str(repo))
    fs.apply(_import_definitions(repo))
    return fs
