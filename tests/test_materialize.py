"""Materialize to a real Redis, then read back through Feast's own online serving."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from featurestore_spark import FeatureStore
from featurestore_spark.demo_data import DEFAULT_START, write_demo_data
from featurestore_spark.online.settings import OnlineStoreError, redis_settings
from tests.helpers import apply_feast_repo, oracle_latest, same
from tests.redis_servers import wait_for_keys

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
DB = 5
END = DEFAULT_START + timedelta(days=10)


@pytest.fixture(scope="module")
def stores(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    data = root / "data"
    os.environ["FSSPARK_DATA_DIR"] = str(data)
    write_demo_data(spark, str(data), rows=3000, entity_rows_count=10, n_entities=150, days=10)
    repo = root / "repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    fs = apply_feast_repo(repo, "rideshare_test", PORT, DB)
    yield fs, FeatureStore(repo_path=repo, spark=spark), data
    del os.environ["FSSPARK_DATA_DIR"]


def test_feast_serves_what_the_engine_pushed(spark, stores):
    fs, store, data = stores
    reports = {r.view: r for r in store.materialize(DEFAULT_START - timedelta(days=1), END)}
    assert reports["driver_hourly_stats"].written == reports["driver_hourly_stats"].rows > 100

    latest = oracle_latest(spark, f"{data}/driver_hourly_stats", ["driver_id"], END)
    ids = sorted(latest.index)[:40]
    feats = ["conv_rate", "acc_rate", "avg_daily_trips", "rating_history"]
    got = fs.get_online_features(
        features=[f"driver_hourly_stats:{f}" for f in feats], entity_rows=[{"driver_id": int(i)} for i in ids]
    ).to_dict()
    for n, i in enumerate(ids):
        for f in feats:
            assert same(latest.loc[i, f], got[f][n]), (i, f, latest.loc[i, f], got[f][n])

    profile = oracle_latest(spark, f"{data}/customer_profile", ["customer_id"], END)
    cids = sorted(profile.index)[:30]
    cfeats = ["current_balance", "lifetime_trip_count", "is_premium", "segment", "avatar_hash", "favourite_zones"]
    got = fs.get_online_features(
        features=[f"customer_profile:{f}" for f in cfeats], entity_rows=[{"customer_id": c} for c in cids]
    ).to_dict()
    for n, c in enumerate(cids):
        for f in cfeats:
            assert same(profile.loc[c, f], got[f][n]), (c, f, profile.loc[c, f], got[f][n])


def test_pushing_older_data_changes_nothing(spark, stores):
    fs, store, _ = stores
    client = redis.Redis(port=PORT, db=DB)
    before = {k: client.hgetall(k) for k in client.keys("*")}
    reports = store.materialize(DEFAULT_START - timedelta(days=1), END - timedelta(days=5), ["driver_hourly_stats"])
    assert reports[0].written == 0 and reports[0].skipped == reports[0].rows > 0
    assert {k: client.hgetall(k) for k in client.keys("*")} == before


def test_unreachable_server_and_bad_password_fail_before_spark_without_the_secret():
    with pytest.raises(OnlineStoreError, match=r"cannot reach Redis at 127.0.0.1:1/0"):
        redis_settings({"type": "redis", "connection_string": "127.0.0.1:1"}).check()
    os.environ["FSSPARK_TEST_SECRET"] = "s3cr3t-value"
    settings = redis_settings({"type": "redis", "connection_string": f"127.0.0.1:{PORT},password=${{FSSPARK_TEST_SECRET}}"})
    assert "s3cr3t-value" not in repr(settings)
    with pytest.raises(OnlineStoreError) as info:
        settings.check()
    assert "s3cr3t-value" not in str(info.value) and info.value.__cause__ is None


def test_key_ttl_is_refreshed_on_accepted_and_skipped_writes(spark, stores):
    from dataclasses import replace

    from featurestore_spark.online.materialize import materialize_view

    _, store, _ = stores
    settings = replace(redis_settings(dict(store.repo.online_store)), key_ttl_seconds=5000)
    view = store.repo.views["customer_profile"]
    client = redis.Redis(port=PORT, db=DB)
    for key in client.keys("*"):
        client.persist(key)
    report = materialize_view(spark, store.repo, view, settings, DEFAULT_START - timedelta(days=1), END)
    assert report.written == 0 and report.skipped > 0  # already there from the first test: all skipped
    ttls = [client.ttl(k) for k in client.keys("*") if client.hexists(k, "_ts:customer_profile")]
    assert ttls and all(4990 <= t <= 5000 for t in ttls)


def test_push_survives_a_redis_restart_midway(tmp_path):
    """A partition's writer reconnects and resends after the server restarts between two batches."""
    import subprocess
    import time

    import numpy as np
    import pyarrow as pa

    from featurestore_spark.online.redis_push import PushSpec, push_batches
    from featurestore_spark.online.settings import RedisSettings

    port = PORT + 17
    start = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", str(tmp_path)]
    subprocess.run(start, check=True)
    client = redis.Redis(port=port)
    for _ in range(50):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)

    size = 8 * 200  # exactly one pipeline: the first batch is on the server before the restart

    def batch(first: int) -> pa.RecordBatch:
        ids = np.arange(first, first + size)
        return pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids * 1_000_000),
                                           "rate": pa.array(ids / 7.0)})

    def batches():
        yield batch(0)
        wait_for_keys(client, size)  # the writer sends from a thread: let the first batch land
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
        subprocess.Popen(["bash", "-c", "sleep 1; " + " ".join(f"'{a}'" for a in start)])  # back after a second
        yield batch(size)

    spec = PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),), features=(("rate", "DOUBLE"),),
                    settings=RedisSettings(nodes=(("127.0.0.1", port),)))
    try:
        counts = list(push_batches(batches(), spec))[0].to_pydict()
        assert counts == {"written": [2 * size], "created": [2 * size], "skipped": [0], "failed": [0],
                          "error": [None]}
        assert client.dbsize() == size  # the restarted server (no persistence) holds the second batch
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)


def test_a_view_wider_than_one_lua_call_is_written_whole():
    """150 features: more than Redis's Lua compiler takes in one HSET call."""
    import numpy as np
    import pyarrow as pa
    from feast.infra.online_stores.redis import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from featurestore_spark.online.redis_push import PushSpec, push_batches
    from featurestore_spark.online.settings import RedisSettings

    names = [f"f{i}" for i in range(150)]
    ids = np.arange(1, 11)
    batch = pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids * 1_000_000),
                                        **{n: pa.array(ids * 1.5 + i) for i, n in enumerate(names)}})
    settings = RedisSettings(nodes=(("127.0.0.1", PORT),), db=DB + 3)
    client = redis.Redis(port=PORT, db=DB + 3)
    client.flushdb()
    spec = PushSpec(project="p", view="wide", keys=(("driver_id", "INT64"),),
                    features=tuple((n, "DOUBLE") for n in names), settings=settings)
    counts = list(push_batches(iter([batch]), spec))[0].to_pydict()
    assert counts["written"] == [10] and counts["failed"] == [0]
    key = _redis_key("p", EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=7)]), 3)
    stored = client.hgetall(key)
    assert len(stored) == 151
    assert stored[_mmh3("wide:f149")] == Value(double_val=7 * 1.5 + 149).SerializeToString()


def test_connection_string_mistakes_never_echo_the_string(monkeypatch):
    from featurestore_spark.errors import ConfigError

    monkeypatch.setenv("FSSPARK_TEST_PW", "ab,cd")
    cases = {
        "127.0.0.1:6379,password=${FSSPARK_TEST_PW}": r"part #3 that is neither host:port nor name=value",
        "127.0.0.1:6379,db=zz": r"option db must be a number",
        "127.0.0.1:6379,password=${FSSPARK_TEST_UNSET_PW}": r"uses a \$\{VARIABLE\} that is not set",
    }
    for connection, message in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            redis_settings({"type": "redis", "connection_string": connection})
        assert "ab" not in str(info.value) and "cd" not in str(info.value) and "zz" not in str(info.value)


def test_a_partition_that_cannot_connect_counts_its_rows_failed():
    """A cluster client reads the topology when it is made: with no node reachable the rows are failed, not lost."""
    import numpy as np
    import pyarrow as pa

    from featurestore_spark.online.redis_push import PushSpec, push_batches
    from featurestore_spark.online.settings import RedisSettings

    ids = np.arange(1, 301)
    batches = [pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids), "rate": pa.array(ids / 3)})]
    spec = PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),), features=(("rate", "DOUBLE"),),
                    settings=RedisSettings(nodes=(("127.0.0.1", 1),), cluster=True))
    counts = list(push_batches(iter(batches * 2), spec))[0].to_pydict()
    assert (counts["written"], counts["skipped"], counts["failed"]) == ([0], [0], [600])
    assert counts["error"][0].startswith("RedisClusterException: cannot connect to Redis at cluster 127.0.0.1:1")
