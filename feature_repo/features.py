"""Example feature repo over Delta tables: rides, drivers and customers.

The tables are written by ``jobs/generate_demo_data.py`` (any size, ``--rows``) into
``$FSSPARK_DATA_DIR`` (default: ``feature_repo/data``).
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp
from feast.value_type import ValueType

DATA = Path(os.environ.get("FSSPARK_DATA_DIR", Path(__file__).parent / "data"))

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64, description="A driver")
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING, description="A rider")

driver_stats_source = SparkSource(
    name="driver_hourly_stats_source",
    path=str(DATA / "driver_hourly_stats"),
    table_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

customer_profile_source = SparkSource(
    name="customer_profile_source",
    path=str(DATA / "customer_profile"),
    table_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_customer_source = SparkSource(
    name="driver_customer_stats_source",
    path=str(DATA / "driver_customer_stats"),
    table_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    field_mapping={"trips_together_cnt": "trips_together"},
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32, description="Share of offers accepted and completed"),
        Field(name="acc_rate", dtype=Float64, description="Share of offers accepted"),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="rating_history", dtype=Array(Float64)),
    ],
    source=driver_stats_source,
    online=True,
    description="Hourly driver quality statistics",
    owner="driver-team@example.com",
    tags={"team": "driver_quality"},
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=7),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="current_balance", dtype=Float32),
        Field(name="lifetime_trip_count", dtype=Int32),
        Field(name="is_premium", dtype=Bool),
        Field(name="segment", dtype=String),
        Field(name="signup_ts", dtype=UnixTimestamp),
        Field(name="avatar_hash", dtype=Bytes),
        Field(name="favourite_zones", dtype=Array(String)),
    ],
    source=customer_profile_source,
    online=True,
    description="Customer account profile",
    owner="growth-team@example.com",
    tags={"team": "growth"},
)

driver_customer_stats = FeatureView(
    name="driver_customer_stats",
    entities=[driver, customer],
    ttl=None,  # unlimited: the latest pair statistics ever seen
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="customer_id", dtype=String),
        Field(name="trips_together", dtype=Int64),
        Field(name="avg_pair_rating", dtype=Float64),
        Field(name="recent_trip_ids", dtype=Array(Int64)),
    ],
    source=driver_customer_source,
    online=True,
    description="Statistics of a driver and a customer riding together",
    owner="marketplace-team@example.com",
    tags={"team": "marketplace"},
)

ride_ranking = FeatureService(
    name="ride_ranking",
    features=[
        driver_hourly_stats[["conv_rate", "acc_rate", "avg_daily_trips"]],
        customer_profile[["current_balance", "is_premium", "segment"]],
        driver_customer_stats,
    ],
    description="Features of the ride-ranking model",
    owner="ranking-team@example.com",
    tags={"team": "ranking"},
)
