"""The engine against Feast 0.67's own SparkOfflineStore on the example repo.

Same answers on the example data; the Feast defects docs/semantics.md lists (section 1.9) each get a test that
shows Feast's behaviour next to the engine's (its Spark store's, and its file store's, Dask).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import feast
import pandas as pd
import pytest
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64

from featurestore_spark import FeatureStore
from featurestore_spark.demo_data import DEFAULT_START, write_demo_data
from featurestore_spark.offline import retrieval
from featurestore_spark.repo import _import_definitions, repo_from_feast
from tests.helpers import EXAMPLE_FEATURES as FEATURES

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def make_feast_repo(root: Path) -> Path:
    """A copy of feature_repo/ with a local registry and a SQLite online store: Feast needs `apply`."""
    repo = root / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (repo / "feature_store.yaml").write_text(
        f"project: rideshare\nregistry: {repo}/registry.db\nprovider: local\n"
        "offline_store:\n  type: spark\n"
        f"online_store:\n  type: sqlite\n  path: {repo}/online.db\n"
        "entity_key_serialization_version: 3\n"
    )
    return repo


@pytest.fixture(scope="module")
def feast_env(spark, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("parity")
    monkeypatch_module.setenv("FSSPARK_DATA_DIR", str(root / "data"))
    write_demo_data(spark, str(root / "data"), rows=8000, entity_rows_count=3000, n_entities=300, days=10)
    repo = make_feast_repo(root)
    fs = feast.FeatureStore(repo_path=str(repo))
    fs.apply(_import_definitions(repo))
    return fs, FeatureStore(repo_path=repo, spark=spark), str(root / "data")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_same_answers_as_feast_on_the_example_repo(spark, feast_env):
    fs, store, data = feast_env
    entities = spark.read.format("delta").load(f"{data}/entities")
    ours = store.get_historical_features(entities, FEATURES, full_feature_names=True)
    theirs = fs.get_historical_features(entity_df=entities, features=FEATURES, full_feature_names=True).to_spark_df()
    theirs = theirs.select(*ours.columns)
    assert ours.count() == entities.count() == theirs.count()
    assert ours.exceptAll(theirs).count() == 0
    assert theirs.exceptAll(ours).count() == 0
    # the comparison is not vacuous: most rows found features
    assert ours.where("driver_hourly_stats__conv_rate IS NOT NULL").count() > 0.3 * entities.count()


def _tie_tables(spark, data: str) -> None:
    """Driver 1001 has two rows with the same event and created time (an exact tie)."""
    t = pd.Timestamp(DEFAULT_START)
    rows = pd.DataFrame({
        "driver_id": [1001, 1001], "event_timestamp": [t, t], "created": [t, t],
        "conv_rate": [0.25, 0.75], "acc_rate": [0.5, 0.5], "avg_daily_trips": [3, 4], "rating_history": [[1.0], [2.0]],
    })
    spark.createDataFrame(
        rows, "driver_id long, event_timestamp timestamp, created timestamp, conv_rate float, acc_rate double, "
        "avg_daily_trips long, rating_history array<double>",
    ).write.format("delta").mode("append").save(f"{data}/driver_hourly_stats")


def test_feast_multiplies_rows_on_exact_ties_the_engine_does_not(spark, feast_env):
    fs, store, data = feast_env
    _tie_tables(spark, data)
    entity = spark.createDataFrame(
        pd.DataFrame({"driver_id": [1001], "event_timestamp": [pd.Timestamp(DEFAULT_START) + timedelta(minutes=1)]})
    )
    theirs = fs.get_historical_features(entity_df=entity, features=["driver_hourly_stats:conv_rate"]).to_spark_df()
    ours = store.get_historical_features(entity, ["driver_hourly_stats:conv_rate"])
    assert theirs.count() == 2  # Feast: one output row per tied feature row
    got = ours.collect()
    assert len(got) == 1 and got[0]["conv_rate"] in (0.25, 0.75)


def test_duplicate_entity_rows_stay_duplicates(spark, feast_env):
    fs, store, data = feast_env
    t = pd.Timestamp(DEFAULT_START) + timedelta(days=2)
    entity = spark.createDataFrame(pd.DataFrame({"driver_id": [1001, 1001, 1002], "event_timestamp": [t, t, t]}))
    ours = store.get_historical_features(entity, ["driver_hourly_stats:conv_rate"])
    theirs = fs.get_historical_features(entity_df=entity, features=["driver_hourly_stats:conv_rate"]).to_spark_df()
    assert sorted((r["driver_id"], r["conv_rate"]) for r in ours.collect()) == sorted(
        (r["driver_id"], r["conv_rate"]) for r in theirs.collect()
    )
    assert sorted(r["driver_id"] for r in ours.collect()) == [1001, 1001, 1002]


def test_feast_row_id_collides_for_keys_that_concatenate_alike(spark, feast_env):
    """Feast's row id is CONCAT(keys..., ts): (1001, '2X') and (10012, 'X') collide; ours is not a string."""
    fs, store, data = feast_env
    t = pd.Timestamp(DEFAULT_START) + timedelta(days=1)
    pairs = pd.DataFrame({
        "driver_id": [1001, 10012], "customer_id": ["2X", "X"], "event_timestamp": [t, t],
        "trips_together_cnt": [1, 2], "avg_pair_rating": [1.0, 2.0], "recent_trip_ids": [[1], [2]],
    })
    spark.createDataFrame(
        pairs, "driver_id long, customer_id string, event_timestamp timestamp, trips_together_cnt long, "
        "avg_pair_rating double, recent_trip_ids array<long>",
    ).write.format("delta").mode("append").save(f"{data}/driver_customer_stats")
    entity = spark.createDataFrame(pd.DataFrame({
        "driver_id": [1001, 10012], "customer_id": ["2X", "X"], "event_timestamp": [t + timedelta(hours=1)] * 2,
    }))
    refs = ["driver_customer_stats:trips_together"]
    ours = sorted((r["driver_id"], r["trips_together"]) for r in store.get_historical_features(entity, refs).collect())
    theirs = sorted(
        (r["driver_id"], r["trips_together"])
        for r in fs.get_historical_features(entity_df=entity, features=refs).to_spark_df().collect()
    )
    assert ours == [(1001, 1), (10012, 2)]
    assert theirs != ours  # rows multiplied and features crossed between the two keys


def test_feast_dask_store_collapses_duplicates_and_drops_out_of_window_rows(spark, tmp_path):
    """Feast's file (Dask) offline store, on the same rows as parquet, returns 2 rows for 4 entity rows:
    the duplicate entity row is collapsed and the row with no feature in its window is dropped. The
    engine returns all 4, the last with a NULL feature."""
    t0 = pd.Timestamp(DEFAULT_START)
    rows = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": [t0, t0 + pd.Timedelta(minutes=10)],
                         "created": [t0, t0 + pd.Timedelta(minutes=10)], "rate": [0.1, 0.2]})
    rows.to_parquet(tmp_path / "stats.parquet")
    spark.createDataFrame(rows, "driver_id long, event_timestamp timestamp, created timestamp, rate double").write.format(
        "delta").save(str(tmp_path / "stats"))
    driver = feast.Entity(name="driver", join_keys=["driver_id"], value_type=feast.ValueType.INT64)
    schema = [feast.Field(name="rate", dtype=Float64)]
    parquet = feast.FileSource(name="stats_parquet", path=str(tmp_path / "stats.parquet"),
                               timestamp_field="event_timestamp", created_timestamp_column="created")
    delta = SparkSource(name="stats_delta", path=str(tmp_path / "stats"), table_format=DeltaFormat(),
                        timestamp_field="event_timestamp", created_timestamp_column="created")
    ttl = timedelta(minutes=5)
    dask_view = feast.FeatureView(name="stats", entities=[driver], ttl=ttl, source=parquet, schema=schema)
    config = feast.RepoConfig(project="p", registry=str(tmp_path / "registry.db"), provider="local",
                              offline_store={"type": "file"}, entity_key_serialization_version=3,
                              online_store={"type": "sqlite", "path": str(tmp_path / "online.db")})
    fs = feast.FeatureStore(config=config)
    fs.apply([driver, dask_view])
    minute = pd.Timedelta(minutes=1)
    ents = pd.DataFrame({"i": [0, 1, 2, 3], "driver_id": [1, 1, 1, 1],
                         "event_timestamp": [t0 + minute, t0 + minute, t0 + 30 * minute, t0 + 12 * minute]})
    theirs = fs.get_historical_features(entity_df=ents, features=["stats:rate"]).to_df()
    # One of the duplicate rows 0 and 1 is gone (Feast keeps one per keys and time), and row 2 too.
    assert len(theirs) == 2 and set(theirs["i"]) - {0, 1} == {3}

    engine_view = feast.FeatureView(name="stats", entities=[driver], ttl=ttl, source=delta, schema=schema)
    repo = repo_from_feast(project="p", objects=[driver, engine_view])
    ours = retrieval.get_historical_features(spark, repo, ents, ["stats:rate"]).toPandas().sort_values("i")
    assert ours["i"].tolist() == [0, 1, 2, 3]
    assert ours["rate"].tolist()[:2] == [0.1, 0.1] and pd.isna(ours["rate"].iloc[2]) and ours["rate"].iloc[3] == 0.2
