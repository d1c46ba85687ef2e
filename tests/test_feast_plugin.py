"""Feast's own CLI and API on the engine, through the plugin, against independent references.

Two copies of feature_repo/ over the same Delta tables: one whose feature_store.yaml uses the
plugin (three changed lines), one with Feast's built-in Spark offline store, Redis online store and
local batch engine. The seed workflow runs verbatim on the first; answers are compared with the
second and with the engine's own API. Real Spark, Delta, Redis and the real `feast` CLI.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import feast
import pandas as pd
import pytest
import redis
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SavedDatasetSparkStorage
from feast.table_format import DeltaFormat

from featurestore_spark import FeatureStore, NotSupportedError, RepoError
from featurestore_spark.demo_data import DEFAULT_START, write_demo_data
from featurestore_spark.repo import _import_definitions
from tests.helpers import EXAMPLE_FEATURES as FEATURES

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
DB_PLUGIN, DB_FEAST = 7, 8
#: The lines of feature_repo/feature_store.yaml that move a Feast repo onto the engine.
PLUGIN_LINES = {
    "  type: spark\n": "  type: featurestore_spark.feast_plugin.DeltaOfflineStore\n",
    "  type: redis\n": "  type: featurestore_spark.feast_plugin.NewerWinsRedisOnlineStore\n",
}
BATCH_ENGINE_LINE = "batch_engine: featurestore_spark.feast_plugin.RedisPushEngine\n"


def copy_repo(root: Path, name: str, db: int, plugin: bool) -> Path:
    """A copy of feature_repo/ with its own registry and Redis db; with ``plugin`` the yaml uses the plugin."""
    repo = root / name
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    text = (ROOT / "feature_repo" / "feature_store.yaml").read_text()
    text = text.replace("registry: data/registry.db", f"registry: {repo}/registry.db")
    text = text.replace('connection_string: "127.0.0.1:6379"', f'connection_string: "127.0.0.1:{PORT},db={db}"')
    if plugin:
        for old, new in PLUGIN_LINES.items():
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        text += BATCH_ENGINE_LINE
        # Only for the test's speed: the session the `feast` CLI builds is small (in-process calls use the test's).
        text = text.replace("    spark.sql.session.timeZone: UTC\n", "    spark.sql.session.timeZone: UTC\n"
                            '    spark.sql.shuffle.partitions: "2"\n    spark.driver.memory: "1g"\n')
    (repo / "feature_store.yaml").write_text(text)
    return repo


def feast_cli(repo: Path, *args: str) -> str:
    """Run the real `feast` CLI in ``repo``; the plugin is importable as after `pip install -e .`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               FSSPARK_SPARK_MASTER="local[2]", SPARK_LOCAL_IP="127.0.0.1")
    feast_bin = Path(sys.executable).with_name("feast")
    done = subprocess.run([str(feast_bin), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    mp = pytest.MonkeyPatch()
    mp.setenv("FSSPARK_DATA_DIR", str(root / "data"))
    write_demo_data(spark, str(root / "data"), rows=3000, entity_rows_count=300, n_entities=120, days=10)
    for db in (DB_PLUGIN, DB_FEAST):
        redis.Redis(port=PORT, db=db).flushdb()
    plugin_repo = copy_repo(root, "plugin_repo", DB_PLUGIN, plugin=True)
    feast_repo = copy_repo(root, "feast_repo", DB_FEAST, plugin=False)
    feast_cli(plugin_repo, "apply")
    reference = feast.FeatureStore(repo_path=str(feast_repo))
    reference.apply(_import_definitions(feast_repo))
    yield root, plugin_repo, reference
    mp.undo()


def redis_dump(db: int) -> dict[bytes, dict[bytes, bytes]]:
    client = redis.Redis(port=PORT, db=db)
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}


def canonical(df: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Rows as comparable tuples: NaN as None, arrays as tuples, timestamps as UTC instants; sorted."""

    def norm(value: object) -> object:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, list):
            return tuple(norm(v) for v in value)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return value

    rows = [tuple(norm(v) for v in row) for row in df[columns].itertuples(index=False)]
    return sorted(rows, key=repr)


def test_seed_workflow_runs_verbatim_and_answers_as_feast_and_the_engine(spark, env):
    root, plugin_repo, reference = env
    store = feast.FeatureStore(repo_path=str(plugin_repo))
    start, middle, end = DEFAULT_START - timedelta(days=1), DEFAULT_START + timedelta(days=5), DEFAULT_START + timedelta(days=10)

    # materialize, then materialize_incremental: the engine's push, Feast's registry records the intervals
    store.materialize(start_date=start, end_date=middle)
    reference.materialize(start_date=start, end_date=middle)
    assert redis_dump(DB_PLUGIN) == redis_dump(DB_FEAST) != {}
    store.materialize_incremental(end_date=end)
    reference.materialize_incremental(end_date=end)
    assert redis_dump(DB_PLUGIN) == redis_dump(DB_FEAST)
    intervals = store.registry.get_feature_view("driver_hourly_stats", store.project).materialization_intervals
    assert [(s, e) for s, e in intervals] == [(start, middle), (middle, end)]

    # get_historical_features(...).to_df(): the same rows as Feast's Spark store and the engine's own API
    entity_df = spark.read.format("delta").load(f"{root}/data/entities").toPandas()
    ours = store.get_historical_features(entity_df=entity_df, features=FEATURES).to_df()
    theirs = reference.get_historical_features(entity_df=entity_df, features=FEATURES).to_df()
    engine = FeatureStore(repo_path=plugin_repo, spark=spark).get_historical_features(entity_df, FEATURES).toPandas()
    columns = list(entity_df.columns) + [f.split(":")[1] for f in FEATURES]
    assert list(ours.columns) == columns and len(ours) == len(entity_df)
    assert str(ours["event_timestamp"].dt.tz) == "UTC" and theirs["event_timestamp"].dt.tz is None  # Feast: naive
    assert canonical(ours, columns) == canonical(theirs, columns) == canonical(engine, columns)
    assert ours["conv_rate"].notna().sum() > 0.3 * len(ours)

    # get_online_features(...).to_dict(): Feast reads what the engine pushed, as it reads its own writes
    rows = [{"driver_id": int(d), "customer_id": c} for d, c in entity_df[["driver_id", "customer_id"]].values[:40]]
    got = store.get_online_features(features=FEATURES, entity_rows=rows).to_dict()
    assert got == reference.get_online_features(features=FEATURES, entity_rows=rows).to_dict()
    assert sum(v is not None for v in got["conv_rate"]) > 20

    # write_to_online_store goes through the newer-wins script: an older row does not overwrite a newer one
    def write(conv_rate: float, at: pd.Timestamp) -> None:
        store.write_to_online_store(feature_view_name="driver_hourly_stats", df=pd.DataFrame({
            "driver_id": [1001], "event_timestamp": [at], "created": [at], "conv_rate": [conv_rate],
            "acc_rate": [0.5], "avg_daily_trips": [7], "rating_history": [[4.5, 5.0]],
        }))

    def online_conv_rate() -> float:
        return store.get_online_features(features=["driver_hourly_stats:conv_rate"],
                                         entity_rows=[{"driver_id": 1001}]).to_dict()["conv_rate"][0]

    future = pd.Timestamp(end + timedelta(days=30))
    write(0.25, future)
    assert online_conv_rate() == 0.25
    write(0.75, future - timedelta(hours=1))
    assert online_conv_rate() == 0.25
    write(0.5, future + timedelta(seconds=1))
    assert online_conv_rate() == 0.5

    # several rows of one key in one write: the newest stays whatever their order, for new keys too
    hour = timedelta(hours=1)
    store.write_to_online_store(feature_view_name="driver_hourly_stats", df=pd.DataFrame({
        "driver_id": [990001, 990001, 990002, 990002], "event_timestamp": [future, future - hour, future - hour, future],
        "created": [future] * 4, "conv_rate": [0.125, 0.25, 0.375, 0.625], "acc_rate": [0.5] * 4,
        "avg_daily_trips": [7] * 4, "rating_history": [[4.5]] * 4,
    }))
    assert store.get_online_features(features=["driver_hourly_stats:conv_rate"], entity_rows=[
        {"driver_id": 990001}, {"driver_id": 990002}]).to_dict()["conv_rate"] == [0.125, 0.625]

    # from the shell: the CLI lists the views and runs an incremental materialization on the engine
    listing = feast_cli(plugin_repo, "feature-views", "list")
    assert all(v in listing for v in ("driver_hourly_stats", "customer_profile", "driver_customer_stats"))
    later = end + timedelta(days=1)
    feast_cli(plugin_repo, "materialize-incremental", later.strftime("%Y-%m-%dT%H:%M:%S"), "--views", "customer_profile")
    store.refresh_registry()
    intervals = store.registry.get_feature_view("customer_profile", store.project).materialization_intervals
    assert [e for _, e in intervals] == [middle, end, later]


def test_feature_service_projections_answer_as_feast(spark, env):
    """A trip's origin and destination drivers: one view projected twice (with_name, with_join_key_map)."""
    root, plugin_repo, reference = env
    store = feast.FeatureStore(repo_path=str(plugin_repo))

    def trip(fs: feast.FeatureStore) -> feast.FeatureService:
        stats = fs.get_feature_view("driver_hourly_stats")
        service = feast.FeatureService(name="trip", features=[
            stats[["conv_rate", "avg_daily_trips"]].with_name("origin").with_join_key_map({"driver_id": "origin_id"}),
            stats[["conv_rate"]].with_name("dest").with_join_key_map({"driver_id": "dest_id"}),
        ])
        fs.apply([service])  # Feast looks services up in its registry
        return service

    rides = spark.read.format("delta").load(f"{root}/data/entities").toPandas()
    ents = pd.DataFrame({"origin_id": rides["driver_id"], "dest_id": rides["driver_id"].sample(frac=1, random_state=7).values,
                         "event_timestamp": rides["event_timestamp"]})
    ours = store.get_historical_features(entity_df=ents, features=trip(store), full_feature_names=True).to_df()
    theirs = reference.get_historical_features(entity_df=ents, features=trip(reference), full_feature_names=True).to_df()
    columns = ["origin_id", "dest_id", "event_timestamp", "origin__conv_rate", "origin__avg_daily_trips", "dest__conv_rate"]
    assert list(ours.columns) == columns and len(ours) == len(ents)
    assert canonical(ours, columns) == canonical(theirs, columns)
    assert ours["origin__conv_rate"].notna().sum() > 0.3 * len(ours) and ours["dest__conv_rate"].notna().sum() > 0

def test_saved_dataset_and_offline_writes_are_delta_commits(spark, env):
    root, plugin_repo, reference = env
    store = feast.FeatureStore(repo_path=str(plugin_repo))
    entity_df = pd.DataFrame({"driver_id": [1001, 1002, 1003],
                              "event_timestamp": [pd.Timestamp(DEFAULT_START + timedelta(days=3))] * 3})
    job = store.get_historical_features(entity_df=entity_df, features=["driver_hourly_stats:conv_rate"])
    assert job.to_spark_df().isStreaming is False  # a lazy Spark DataFrame, nothing collected yet
    storage = SavedDatasetSparkStorage(path=str(root / "saved" / "train"), table_format=DeltaFormat())
    job.persist(storage)  # Feast 0.67's create_saved_dataset cannot take a path storage (SparkSource needs a name)
    assert spark.read.format("delta").load(storage.spark_options.path).count() == 3
    with pytest.raises(FileExistsError, match="allow_overwrite=True"):
        job.persist(storage)
    job.persist(storage, allow_overwrite=True)  # a second Delta version
    assert spark.sql(f"DESCRIBE HISTORY delta.`{storage.spark_options.path}`").count() == 2
    spark.range(2).write.parquet(str(root / "saved" / "parquet"))
    with pytest.raises(FileExistsError, match=r"'.*parquet' exists and is not a Delta table \(it holds "):
        job.persist(SavedDatasetSparkStorage(path=str(root / "saved" / "parquet"), table_format=DeltaFormat()),
                    allow_overwrite=True)
    assert not (root / "saved" / "parquet" / "_delta_log").exists()
    saved = store.create_saved_dataset(from_=job, name="train_table", storage=SavedDatasetSparkStorage(table="train_ds"))
    assert len(saved.to_df()) == 3  # read back by pull_all_from_table_or_query on the Delta table

    path = f"{root}/data/driver_hourly_stats"
    before = spark.read.format("delta").load(path).count()
    at = pd.Timestamp(DEFAULT_START + timedelta(days=4))
    store.write_to_offline_store("driver_hourly_stats", pd.DataFrame({
        "driver_id": [1001, 1002], "event_timestamp": [at, at], "created": [at, at], "conv_rate": [0.1, 0.2],
        "acc_rate": [0.3, 0.4], "avg_daily_trips": [1, 2], "rating_history": [[1.0], [2.0]],
    }))
    assert spark.read.format("delta").load(path).count() == before + 2


def test_pull_latest_matches_feasts_spark_store(spark, env):
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore

    from featurestore_spark.feast_plugin import DeltaOfflineStore

    _, plugin_repo, reference = env
    store = feast.FeatureStore(repo_path=str(plugin_repo))
    source = store.get_feature_view("driver_customer_stats").batch_source
    args = dict(data_source=source, join_key_columns=["driver_id", "customer_id"],
                feature_name_columns=["trips_together_cnt", "avg_pair_rating"], timestamp_field="event_timestamp",
                created_timestamp_column=None, start_date=DEFAULT_START, end_date=DEFAULT_START + timedelta(days=6))
    ours = DeltaOfflineStore.pull_latest_from_table_or_query(config=store.config, **args).to_df()
    theirs = SparkOfflineStore.pull_latest_from_table_or_query(config=reference.config, **args).to_df()
    columns = ["driver_id", "customer_id", "trips_together", "avg_pair_rating", "event_timestamp"]
    assert len(ours) > 50 and canonical(ours, columns) == canonical(theirs, columns)


def test_unsupported_views_fail_before_spark_work(spark, env):
    from feast import FeatureView, Field, FileSource, RequestSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64

    _, plugin_repo, _ = env
    store = feast.FeatureStore(repo_path=str(plugin_repo))
    driver_stats = store.get_feature_view("driver_hourly_stats")
    request = RequestSource(name="bonus", schema=[Field(name="bonus", dtype=Float64)])

    @on_demand_feature_view(sources=[driver_stats, request], schema=[Field(name="boosted", dtype=Float64)])
    def boosted_rate(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"boosted": inputs["conv_rate"] + inputs["bonus"]})

    parquet = FeatureView(
        name="parquet_stats", entities=[store.get_entity("driver")], ttl=timedelta(days=1),
        schema=[Field(name="driver_id", dtype=feast.types.Int64), Field(name="x", dtype=Float64)],
        source=FileSource(name="parquet_source", path="/nonexistent/stats.parquet", timestamp_field="event_timestamp"),
    )
    store.apply([boosted_rate, parquet])
    entity_df = pd.DataFrame({"driver_id": [1001], "event_timestamp": [pd.Timestamp(DEFAULT_START)],
                              "bonus": [0.1]})
    jobs = set(spark.sparkContext.statusTracker().getJobIdsForGroup(None))
    with pytest.raises(NotSupportedError, match="on-demand feature view 'boosted_rate'"):
        store.get_historical_features(entity_df=entity_df, features=["boosted_rate:boosted"])
    with pytest.raises(RepoError, match="feature view 'parquet_stats' has a FileSource.*DeltaFormat"):
        store.get_historical_features(entity_df=entity_df, features=["parquet_stats:x"])
    with pytest.raises(RepoError, match="feature view 'parquet_stats' has a FileSource"):
        store.materialize(start_date=DEFAULT_START, end_date=DEFAULT_START + timedelta(days=1),
                          feature_views=["parquet_stats"])
    with pytest.raises(RepoError, match="data source 'parquet_source' has a FileSource"):  # what `feast apply` calls
        store._get_provider().offline_store.validate_data_source(store.config, parquet.batch_source)
    assert set(spark.sparkContext.statusTracker().getJobIdsForGroup(None)) == jobs


def test_offline_store_line_alone_works_with_feasts_local_engine(spark, env):
    """Only `offline_store` changed: Feast's local engine materializes through the plugin's pull_all."""
    root, _, _ = env
    offline_only = copy_repo(root, "offline_only_repo", 9, plugin=False)
    yaml = offline_only / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace("  type: spark\n", PLUGIN_LINES["  type: spark\n"]))
    engine_repo = copy_repo(root, "engine_repo", 10, plugin=False)
    for db in (9, 10):
        redis.Redis(port=PORT, db=db).flushdb()
    store = feast.FeatureStore(repo_path=str(offline_only))
    store.apply(_import_definitions(offline_only))
    start, end = DEFAULT_START - timedelta(days=1), DEFAULT_START + timedelta(days=10)
    store.materialize(start_date=start, end_date=end)
    FeatureStore(repo_path=engine_repo, spark=spark).materialize(start, end)
    assert redis_dump(9) == redis_dump(10) != {}

    # "as known at" retrieval passes through: rows created after the entity time are not used
    entity_df = spark.read.format("delta").load(f"{root}/data/entities").toPandas()
    refs = ["driver_hourly_stats:conv_rate", "customer_profile:segment"]
    ours = store.get_historical_features(entity_df=entity_df, features=refs, filter_by_created_timestamp=True).to_df()
    engine = FeatureStore(repo_path=engine_repo, spark=spark).get_historical_features(
        entity_df, refs, filter_by_created_timestamp=True).toPandas()
    columns = list(entity_df.columns) + ["conv_rate", "segment"]
    assert canonical(ours, columns) == canonical(engine, columns)
