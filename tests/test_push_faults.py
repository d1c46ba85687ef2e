"""Faults during a push to Redis: nothing lost, nothing silent.

Each test pushes one view of N keys (two rows per key: an old one and the newest) to a Redis server of
its own, injects a fault while the keys arrive (the server killed and started again empty, paused
past the client's timeout, a cluster master killed and replaced by its replica, a second writer, the
pushing process killed), then checks every key against the newest row, read with Feast's own key
and field encoding, and the report's counts: written + skipped + failed == the keys pushed, each
counted from the server's answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from pyspark.sql import functions as F

from featurestore_spark import FeatureStore
from featurestore_spark.cli import main as cli
from tests.helpers import T0
from tests.redis_servers import PORT_BASE, RestartableServer, redis_cluster, when_keys

ROOT = Path(__file__).resolve().parents[1]
N = 150_000
START, END = T0 - timedelta(days=1), T0 + timedelta(days=3)
PORT = PORT_BASE + 120

DEFS = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64
from feast.value_type import ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
rates = FeatureView(
    name="rates", entities=[driver], ttl=timedelta(days=365),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="rate", dtype=Float64)],
    source=SparkSource(name="rates_source", path="{data}", table_format=DeltaFormat(),
                       timestamp_field="event_timestamp", created_timestamp_column="created"),
)
'''


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory) -> Path:
    """N drivers, each with an old row (rate -1) and, a day later, the newest (rate id / 7)."""
    path = tmp_path_factory.mktemp("push_faults") / "rates"
    t0 = int(T0.timestamp())
    ids = spark.range(N)
    rows = [ids.select(F.col("id").alias("driver_id"),
                       F.timestamp_seconds(F.lit(t0 + day * 86400) + F.col("id") % 1000).alias("event_timestamp"),
                       F.lit(rate).alias("rate") if rate is not None else (F.col("id") / 7.0).alias("rate"))
            for day, rate in ((0, -1.0), (1, None))]
    rows[0].unionByName(rows[1]).withColumn("created", F.col("event_timestamp")).write.format("delta").save(str(path))
    return path


def repo(root: Path, data: Path, connection: str, redis_type: str = "redis") -> Path:
    """A Feast repo with the one view, whose online store is ``connection``."""
    folder = root / "repo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "features.py").write_text(DEFS.replace("{data}", str(data)))
    (folder / "feature_store.yaml").write_text(
        f"project: faults\nregistry: {folder}/registry.db\nprovider: local\nonline_store:\n  type: redis\n"
        f"  redis_type: {redis_type}\n  connection_string: \"{connection}\"\nentity_key_serialization_version: 3\n")
    return folder


def missing_and_stale(client) -> tuple[int, int]:
    """Keys absent, and keys whose value is not the newest row's: read with Feast's key and field encoding."""
    field = _mmh3("rates:rate")
    pipe = client.pipeline(transaction=False)
    for i in range(N):
        pipe.hget(_redis_key("faults", EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=i)])), field)
    got = pipe.execute()
    missing = sum(v is None for v in got)
    stale = sum(v is not None and Value.FromString(v).double_val != i / 7.0 for i, v in enumerate(got))
    return missing, stale


def spawn_cli(argv: list[str]) -> subprocess.Popen:
    """``fsspark`` in a process group of its own (driver, JVM, Python workers), so that a test can kill all of it."""
    env = {**os.environ, "FSSPARK_SPARK_MASTER": "local[2]", "SPARK_LOCAL_IP": "127.0.0.1"}
    return subprocess.Popen([sys.executable, "-m", "featurestore_spark.cli", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture
def server(tmp_path):
    srv = RestartableServer(PORT, tmp_path / "redis").start()
    yield srv
    srv.stop()


def restart_after(srv: RestartableServer, seconds: float):
    def action() -> None:
        srv.kill()
        time.sleep(seconds)
        srv.start()
    return action


@pytest.mark.parametrize("fraction", [0.25, 0.7])
def test_a_fast_restart_mid_push_is_repaired_and_the_report_is_true(spark, data, server, tmp_path, fraction):
    """The issue's case: killed -9 (no persistence) and back 1 s later. Keys written before are gone;
    the push sees the new run_id, pushes every key again, and every key ends newest."""
    store = FeatureStore(repo(tmp_path, data, f"127.0.0.1:{PORT}"), spark=spark)
    thread, seen = when_keys(PORT, int(N * fraction), restart_after(server, 1.0))
    [report] = store.materialize(START, END, ["rates"])
    thread.join(30)
    assert seen and seen[0] < N  # the fault came while keys were still arriving
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)
    assert (report.rows, report.written, report.skipped, report.failed, report.passes) == (N, N, 0, 0, 2)
    assert "every key was sent again (2 passes)" in report.summary()


def test_a_pause_past_the_client_timeout_counts_every_key_written(spark, data, server, tmp_path):
    """SIGSTOP for 3 s with a 1 s socket timeout: pipelines time out and are sent again while their first
    attempt waits in the server's buffers and runs on SIGCONT. Those keys count as written (the lost
    attempt wrote them), not skipped; the server did not restart, so one pass."""
    store = FeatureStore(repo(tmp_path, data, f"127.0.0.1:{PORT},socket_timeout=1"), spark=spark)

    def pause() -> None:
        server.pause()
        time.sleep(3)
        server.resume()

    thread, seen = when_keys(PORT, N // 3, pause)
    [report] = store.materialize(START, END, ["rates"])
    thread.join(30)
    assert seen and seen[0] < N
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)
    assert (report.rows, report.written, report.skipped, report.failed, report.passes) == (N, N, 0, 0, 1)


def test_a_server_down_for_good_fails_every_key_exit_3_and_the_watermark_stays(spark, data, server, tmp_path, capsys):
    """Killed mid-push and not back within the retries: exit 3, every key counted failed (what was
    written went with the server), no watermark; once it is back, the same command completes."""
    folder = repo(tmp_path, data, f"127.0.0.1:{PORT}")
    state = tmp_path / "watermarks"
    argv = ["--repo", str(folder), "materialize-incremental", "--end", END.isoformat(), "--state-path", str(state)]
    thread, seen = when_keys(PORT, N // 4, server.kill)
    assert cli(argv) == 3
    thread.join(5)
    out, err = capsys.readouterr()
    assert seen and seen[0] < N
    assert f"rates: {N} keys, 0 written, 0 skipped (not newer), {N} failed" in out
    assert "did not answer" in out and "not confirmed" in out and "rerun" in err
    assert not (state / "_delta_log").exists()  # no watermark recorded
    server.start()  # empty: what the first run wrote is gone
    assert cli(argv) == 0
    assert f"rates: {N} keys, {N} written, 0 skipped (not newer), 0 failed" in capsys.readouterr().out
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)
    assert (state / "_delta_log").exists()


def test_two_writers_at_once_write_each_key_once(spark, data, server, tmp_path):
    """Two pushes of the same view at the same time: every key written by exactly one of them and
    skipped by the other (the scripts check and write atomically)."""
    store = FeatureStore(repo(tmp_path, data, f"127.0.0.1:{PORT}"), spark=spark)
    reports: list = []
    threads = [threading.Thread(target=lambda: reports.extend(store.materialize(START, END, ["rates"])))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(reports) == 2 and all(r.rows == N and r.failed == 0 for r in reports)
    assert sum(r.written for r in reports) == N and sum(r.skipped for r in reports) == N
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)


def test_min_replicas_waits_for_a_replica_and_fails_keys_it_cannot_confirm(spark, data, server, tmp_path):
    """WAIT after each pipeline: with its one replica up, every key is written and on the replica; asking
    for two replicas counts every written key failed, naming why."""
    replica = RestartableServer(PORT + 1, tmp_path / "replica", "--replicaof", "127.0.0.1", str(PORT)).start()
    try:
        store = FeatureStore(repo(tmp_path, data, f"127.0.0.1:{PORT}"), spark=spark)
        [report] = store.materialize(START, END, ["rates"], min_replicas=1)
        assert (report.written, report.failed) == (N, 0)
        assert missing_and_stale(redis.Redis(port=PORT + 1)) == (0, 0)  # the replica holds every key
        redis.Redis(port=PORT).flushall()
        for _ in range(100):
            if redis.Redis(port=PORT + 1).dbsize() == 0:
                break
            time.sleep(0.05)
        [report] = store.materialize(START, END, ["rates"], min_replicas=2)
        assert (report.rows, report.written, report.skipped, report.failed) == (N, 0, 0, N)
        assert "only 1 of 2 replica(s) of Redis at 127.0.0.1" in report.error
        # Again: keys the first try wrote now hold the same event time; still not on two replicas, so failed.
        [report] = store.materialize(START, END, ["rates"], min_replicas=2)
        assert (report.rows, report.written, report.skipped, report.failed) == (N, 0, 0, N)
    finally:
        replica.stop()


def test_a_cluster_master_killed_mid_push_fails_over_and_every_key_arrives(spark, data, tmp_path):
    """Three masters with a replica each; the master of slot 0 is killed -9 while keys arrive. Its
    replica takes over, possibly without the last writes it had not received: the push sees a new
    master, pushes every key again, and every key ends newest."""
    from redis.cluster import RedisCluster

    with redis_cluster(PORT_BASE + 130, tmp_path / "cluster", replicas=1) as ports:
        nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
        store = FeatureStore(repo(tmp_path, data, nodes, "redis_cluster"), spark=spark)
        cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        victim = cluster.nodes_manager.get_node_from_slot(0)
        pid = redis.Redis(port=victim.port).info("server")["process_id"]
        masters = [m.port for m in cluster.get_primaries()]
        seen: list[int] = []

        def watch() -> None:
            while True:
                held = sum(redis.Redis(port=p).dbsize() for p in masters)
                if held >= N // 3:
                    seen.append(held)
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        [report] = store.materialize(START, END, ["rates"])
        thread.join(5)
        assert seen and seen[0] < N
        assert (report.rows, report.failed, report.passes) == (N, 0, 2), report.error
        assert report.written + report.skipped == N
        cluster.nodes_manager.initialize()
        assert cluster.nodes_manager.get_node_from_slot(0).port != victim.port  # the replica took over
        assert missing_and_stale(cluster) == (0, 0)
        cluster.close()


def test_the_pushing_process_killed_leaves_no_watermark_and_a_rerun_completes(spark, data, server, tmp_path):
    """``fsspark materialize-incremental`` killed -9 (its whole process group: driver and JVM) mid-push:
    no watermark; the same command again writes the rest and skips exactly the keys already there."""
    folder = repo(tmp_path, data, f"127.0.0.1:{PORT}")
    state = tmp_path / "watermarks"
    argv = ["--repo", str(folder), "materialize-incremental", "--end", END.isoformat(), "--state-path", str(state)]
    proc = spawn_cli(argv)
    thread, seen = when_keys(PORT, N // 3, lambda: os.killpg(proc.pid, signal.SIGKILL), timeout=240)
    proc.wait(300)
    thread.join(5)
    assert seen and seen[0] < N and proc.returncode == -signal.SIGKILL
    assert not (state / "_delta_log").exists()
    held = settled_dbsize(PORT)
    [report] = FeatureStore(folder, spark=spark, state_path=str(state)).materialize_incremental(END, ["rates"])
    assert (report.rows, report.written, report.skipped, report.failed) == (N, N - held, held, 0)
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)
    assert (state / "_delta_log").exists()


def settled_dbsize(port: int) -> int:
    """The server's key count once it stops changing for a second: a killed driver's Python workers
    notice only at their next read that the JVM is gone, and may send a pipeline or two before."""
    client, last, since = redis.Redis(port=port), -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        held = client.dbsize()
        if held != last:
            last, since = held, time.monotonic()
        time.sleep(0.05)
    return last


def stream_setup(spark, data: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """An empty Delta source for the view (the stream appends to it), a folder of parquet files holding
    the rows of ``data``, and the repo."""
    target, inbox = tmp_path / "target", tmp_path / "inbox"
    rows = spark.read.format("delta").load(str(data))
    rows.limit(0).write.format("delta").save(str(target))
    rows.write.parquet(str(inbox))
    return target, inbox, repo(tmp_path, target, f"127.0.0.1:{PORT}")


def test_a_stream_batch_survives_a_fast_redis_restart(spark, data, server, tmp_path):
    """ingest_stream: Redis killed and back 1 s later while a micro-batch is pushed; the batch's push is
    repaired, the Delta source gets every row once."""
    target, inbox, folder = stream_setup(spark, data, tmp_path)
    store = FeatureStore(folder, spark=spark)
    stream = spark.readStream.schema(spark.read.parquet(str(inbox)).schema).parquet(str(inbox))
    thread, seen = when_keys(PORT, N // 4, restart_after(server, 1.0))
    store.ingest_stream("rates", stream, str(tmp_path / "checkpoint"), trigger={"availableNow": True}).awaitTermination()
    thread.join(30)
    assert seen and seen[0] < N
    assert spark.read.format("delta").load(str(target)).count() == 2 * N
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)


def test_a_stream_process_killed_mid_push_resumes_without_duplicates(spark, data, server, tmp_path, capsys):
    """``fsspark ingest-stream`` killed -9 while its first batch is pushed (the batch is already appended):
    the same command again runs the batch again, the append is skipped, the push completes."""
    target, inbox, folder = stream_setup(spark, data, tmp_path)
    argv = ["--repo", str(folder), "ingest-stream", "--view", "rates", "--from", str(inbox), "--format", "parquet",
            "--checkpoint", str(tmp_path / "checkpoint"), "--available-now"]
    proc = spawn_cli(argv)
    thread, seen = when_keys(PORT, N // 3, lambda: os.killpg(proc.pid, signal.SIGKILL), timeout=240)
    proc.wait(300)
    thread.join(5)
    assert seen and seen[0] < N and proc.returncode == -signal.SIGKILL
    assert spark.read.format("delta").load(str(target)).count() == 2 * N  # appended before the push began
    assert cli(argv) == 0
    assert spark.read.format("delta").load(str(target)).count() == 2 * N  # not appended twice
    assert missing_and_stale(redis.Redis(port=PORT)) == (0, 0)


def test_a_training_set_build_killed_mid_write_leaves_the_previous_version(spark, data, tmp_path):
    """``fsspark training-set`` killed -9 once its output's new data files appear: the table still reads as
    the previous build (Delta commits atomically); the same request again builds the next version."""
    from delta.tables import DeltaTable

    folder = repo(tmp_path, data, f"127.0.0.1:{PORT}")
    out = tmp_path / "training_set"
    request = tmp_path / "request.yaml"
    entities = tmp_path / "entities"
    spark.read.format("delta").load(str(data)).select("driver_id", "event_timestamp").write.format("delta").save(
        str(entities))
    request.write_text(f"name: faults\nentities:\n  delta: {entities}\nfeatures: [\"rates:rate\"]\n"
                       f"output:\n  path: {out}\n  mode: overwrite\n")
    store = FeatureStore(folder, spark=spark, catalog=str(tmp_path / "catalog"))
    store.create_training_set(str(request))
    before = sorted(map(tuple, spark.read.format("delta").load(str(out)).collect()))
    old_files = set(out.glob("*.parquet"))
    argv = ["--repo", str(folder), "--catalog", str(tmp_path / "catalog"), "training-set", str(request)]
    proc = spawn_cli(argv)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not set(out.glob("*.parquet")) - old_files:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    assert set(out.glob("*.parquet")) - old_files  # new files were being written
    assert DeltaTable.forPath(spark, str(out)).history(1).collect()[0]["version"] == 0
    assert sorted(map(tuple, spark.read.format("delta").load(str(out)).collect())) == before
    result = store.create_training_set(str(request))
    assert result.version == 1
    assert sorted(map(tuple, spark.read.format("delta").load(str(out)).collect())) == before
