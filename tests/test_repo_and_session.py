"""The example repo loads into the specs the engine needs; the session is Delta + UTC."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from featurestore_spark import ConfigError, RepoError
from featurestore_spark.repo import load_repo
from featurestore_spark.session import load_profile

ROOT = Path(__file__).resolve().parents[1]


def test_example_repo_specs():
    repo = load_repo(ROOT / "feature_repo")
    assert repo.project == "rideshare"
    assert list(repo.views) == ["customer_profile", "driver_customer_stats", "driver_hourly_stats"] or set(
        repo.views
    ) == {"customer_profile", "driver_customer_stats", "driver_hourly_stats"}
    drivers = repo.views["driver_hourly_stats"]
    assert drivers.join_key_names == ("driver_id",) and drivers.join_keys[0].dtype == "INT64"
    assert drivers.ttl == timedelta(days=1) and drivers.source.created_timestamp_column == "created"
    assert dict(drivers.tags) == {"team": "driver_quality"} and drivers.owner == "driver-team@example.com"
    pairs = repo.views["driver_customer_stats"]
    assert pairs.join_key_names == ("driver_id", "customer_id") and pairs.ttl is None
    assert pairs.source.column_for("trips_together") == "trips_together_cnt"
    types = {f.dtype for v in repo.views.values() for f in v.features}
    assert {"INT32", "INT64", "FLOAT", "DOUBLE", "STRING", "BYTES", "BOOL", "UNIX_TIMESTAMP"} <= types
    assert [r.ref for r in repo.services["ride_ranking"].features][:3] == [
        "driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips",
    ]


def test_repo_without_feature_store_yaml(tmp_path):
    with pytest.raises(RepoError, match="no feature_store.yaml in"):
        load_repo(tmp_path)


def test_parquet_source_is_rejected_with_the_fix(tmp_path):
    (tmp_path / "feature_store.yaml").write_text("project: p\nregistry: r.db\nprovider: local\n")
    (tmp_path / "defs.py").write_text(
        "from datetime import timedelta\n"
        "from feast import Entity, FeatureView, Field, FileSource\n"
        "from feast.types import Int64\n"
        "e = Entity(name='e', join_keys=['e_id'])\n"
        "src = FileSource(path='x.parquet', timestamp_field='ts')\n"
        "v = FeatureView(name='v', entities=[e], schema=[Field(name='e_id', dtype=Int64), Field(name='f', dtype=Int64)],"
        " source=src, ttl=timedelta(days=1))\n"
    )
    with pytest.raises(RepoError, match=r"feature view 'v' has a FileSource; the engine reads Delta tables"):
        load_repo(tmp_path)


def test_session_is_utc_with_delta(spark, tmp_path):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    spark.range(3).write.format("delta").save(str(tmp_path / "t"))
    assert spark.read.format("delta").load(str(tmp_path / "t")).count() == 3


def test_profiles_reject_unknown_keys(tmp_path):
    (tmp_path / "odd.yaml").write_text("master: local[1]\nmastr: typo\n")
    with pytest.raises(ConfigError, match="mastr"):
        load_profile("odd", tmp_path)
    with pytest.raises(ConfigError, match=r"no Spark profile 'nope' in .* \(profiles: odd\)"):
        load_profile("nope", tmp_path)
    assert load_profile("cluster").master is None and load_profile("local").master == "local[*]"
