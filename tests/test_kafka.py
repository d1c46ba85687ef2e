"""Streaming from a real Kafka broker (``scripts/kafka.sh``, KRaft, one node on loopback) into a view's
Delta source and Redis: JSON and Avro values, records that cannot be read kept as dead letters, and
exactly-once appends across runs from one checkpoint.

The records are produced with Spark's own Kafka sink; the reference for what must land is computed
here in plain Python (``json``, ``datetime``) from the records as produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from pyspark.sql import functions as F

from featurestore_spark import FeatureStore, KafkaSource
from tests.redis_servers import PORT_BASE
from tests.services import example_repo, hashes, script_service

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
KAFKA_PORT = PORT_BASE + 150
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
REDIS_PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
NOW = datetime.now(timezone.utc).replace(microsecond=0)
COLUMNS = ("driver_id", "event_timestamp", "created", "conv_rate", "acc_rate", "avg_daily_trips", "rating_history")


@pytest.fixture(scope="module")
def broker():
    before = os.environ.get("FSSPARK_KAFKA_PORT")
    os.environ["FSSPARK_KAFKA_PORT"] = str(KAFKA_PORT)
    try:
        with script_service("kafka.sh", f"), 127.0.0.1:{KAFKA_PORT}"):  # running, on this port
            yield BOOTSTRAP
    finally:
        os.environ.pop("FSSPARK_KAFKA_PORT") if before is None else os.environ.update(FSSPARK_KAFKA_PORT=before)


def produce(spark, topic: str, values: list[bytes]) -> None:
    """Records onto ``topic``, in order, through Spark's Kafka sink: one key for all, so one partition
    holds them in this order (offsets 0, 1, ...)."""
    rows = [(b"drivers", v) for v in values]
    (spark.createDataFrame(rows, "key binary, value binary").coalesce(1).write.format("kafka")
     .option("kafka.bootstrap.servers", BOOTSTRAP).option("topic", topic).save())


def good_record(i: int, *, millis: bool) -> dict:
    ts = NOW - timedelta(minutes=i)
    return {"driver_id": 1000 + i % 7, "event_timestamp": int(ts.timestamp() * 1000) if millis else ts.isoformat(),
            "created": (ts + timedelta(seconds=5)).isoformat(), "conv_rate": round(0.01 * i, 2),
            "acc_rate": 0.5, "avg_daily_trips": i, "rating_history": [1.0, float(i)]}


def expected_rows(records: list[dict]) -> set[tuple]:
    """The rows the records must become, computed here: timestamps to UTC datetimes."""
    def ts(value) -> datetime:
        if isinstance(value, int):
            return datetime.fromtimestamp(value / 1000, timezone.utc).replace(tzinfo=None)
        return datetime.fromisoformat(value).astimezone(timezone.utc).replace(tzinfo=None)

    return {(r["driver_id"], ts(r["event_timestamp"]), ts(r["created"]), r["conv_rate"], r["acc_rate"],
             r["avg_daily_trips"], tuple(r["rating_history"])) for r in records}


def landed(spark, path: Path) -> set[tuple]:
    rows = spark.read.format("delta").load(str(path)).select(*COLUMNS).collect()
    return {(r.driver_id, r.event_timestamp, r.created, round(r.conv_rate, 2), r.acc_rate, r.avg_daily_trips,
             tuple(r.rating_history)) for r in rows}


@pytest.fixture()
def view_table(spark, tmp_path):
    """An empty Delta table of driver_hourly_stats' columns, and a repo copy whose view reads it."""
    table = tmp_path / "driver_stream"
    schema = ("driver_id long, event_timestamp timestamp, created timestamp, conv_rate float, acc_rate double, "
              "avg_daily_trips long, rating_history array<double>")
    spark.createDataFrame([], schema).write.format("delta").save(str(table))
    redis.Redis(port=REDIS_PORT, db=11).flushdb()
    return table, example_repo(tmp_path / "repo", REDIS_PORT, 11, view_path=table)


def run_once(store, topic: str, checkpoint: Path, source: KafkaSource | None = None) -> None:
    query = store.ingest_stream("driver_hourly_stats", source or KafkaSource(BOOTSTRAP, topic), str(checkpoint),
                                trigger={"availableNow": True})
    query.awaitTermination()
    assert query.exception() is None


def test_json_records_land_once_and_unreadable_ones_go_to_dead_letters(spark, broker, view_table, tmp_path):
    table, repo = view_table
    store = FeatureStore(repo, spark=spark)
    topic = f"drivers-{uuid.uuid4().hex[:8]}"
    good = [good_record(i, millis=i % 2 == 0) for i in range(40)]
    poison = [b"not json at all", json.dumps({**good_record(90, millis=False), "conv_rate": "high"}).encode(),
              json.dumps({k: v for k, v in good_record(91, millis=False).items() if k != "driver_id"}).encode(),
              json.dumps({**good_record(92, millis=False), "event_timestamp": "yesterday"}).encode(),
              json.dumps({**good_record(93, millis=False), "created": "soon"}).encode(),
              # Epoch micro- and nanoseconds are not milliseconds (and the latter would overflow Spark's conversion).
              json.dumps({**good_record(94, millis=False), "event_timestamp": 1767225600000000}).encode(),
              json.dumps({**good_record(95, millis=False), "event_timestamp": 1767225600000000000}).encode()]
    produce(spark, topic, [json.dumps(r).encode() for r in good[:25]] + poison + [json.dumps(r).encode() for r in good[25:]])
    checkpoint = tmp_path / "checkpoint"

    run_once(store, topic, checkpoint)
    assert landed(spark, table) == expected_rows(good)
    assert spark.read.format("delta").load(str(table)).count() == len(good)
    dead = spark.read.format("delta").load(f"{table}_dead_letters").orderBy("offset").collect()
    assert [bytes(d.value) for d in dead] == poison
    assert [d.offset for d in dead] == list(range(25, 25 + len(poison))) and {d.topic for d in dead} == {topic}
    assert "is not JSON" in dead[0].reason and "is not JSON" in dead[1].reason
    assert dead[2].reason == "the join key 'driver_id' is missing"
    assert dead[3].reason == "the timestamp 'event_timestamp' is neither ISO-8601 nor epoch milliseconds: yesterday"
    assert dead[4].reason == "the timestamp 'created' is neither ISO-8601 nor epoch milliseconds: soon"
    assert dead[5].reason == "the timestamp 'event_timestamp' is neither ISO-8601 nor epoch milliseconds: 1767225600000000"
    assert dead[6].reason.endswith("epoch milliseconds: 1767225600000000000")

    # Redis holds what a materialize of the same rows over the view's ttl gives, byte for byte.
    reference = FeatureStore(example_repo(tmp_path / "repo_ref", REDIS_PORT, 12, view_path=table), spark=spark)
    redis.Redis(port=REDIS_PORT, db=12).flushdb()
    reference.materialize(NOW - timedelta(days=1), NOW + timedelta(minutes=1), feature_views=["driver_hourly_stats"])
    assert len(hashes(REDIS_PORT, 11)) == 7 and hashes(REDIS_PORT, 11) == hashes(REDIS_PORT, 12)

    # The batch runs again, as after a crash between its writes and its commit to the checkpoint (the
    # commit file removed): Delta's transaction ids keep both appends from happening twice.
    commits = sorted((checkpoint / "commits").glob("[0-9]*"), key=lambda f: int(f.name))
    commits[-1].unlink()
    (checkpoint / "commits" / f".{commits[-1].name}.crc").unlink(missing_ok=True)
    run_once(store, topic, checkpoint)
    assert (checkpoint / "commits" / commits[-1].name).exists()  # it did run again
    assert spark.read.format("delta").load(str(table)).count() == len(good)
    assert spark.read.format("delta").load(f"{table}_dead_letters").count() == len(poison)
    # Then new records, and only they land.
    more = [good_record(i, millis=False) for i in range(100, 110)]
    produce(spark, topic, [json.dumps(r).encode() for r in more])
    run_once(store, topic, checkpoint)
    assert landed(spark, table) == expected_rows(good + more)
    assert spark.read.format("delta").load(str(table)).count() == len(good + more)
    assert spark.read.format("delta").load(f"{table}_dead_letters").count() == len(poison)


def test_avro_values_with_a_schema_file(spark, broker, view_table, tmp_path):
    from pyspark.sql.avro.functions import to_avro

    table, repo = view_table
    topic = f"drivers-avro-{uuid.uuid4().hex[:8]}"
    records = [good_record(i, millis=False) for i in range(12)]
    rows = spark.createDataFrame([(r["driver_id"], datetime.fromisoformat(r["event_timestamp"]),
                                   datetime.fromisoformat(r["created"]), r["conv_rate"], r["acc_rate"],
                                   r["avg_daily_trips"], r["rating_history"]) for r in records],
                                 "driver_id long, event_timestamp timestamp, created timestamp, conv_rate float, "
                                 "acc_rate double, avg_daily_trips long, rating_history array<double>")
    schema = {"type": "record", "name": "DriverStats", "fields": [
        {"name": "driver_id", "type": "long"},
        {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "created", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "conv_rate", "type": ["null", "float"]}, {"name": "acc_rate", "type": ["null", "double"]},
        {"name": "avg_daily_trips", "type": ["null", "long"]},
        {"name": "rating_history", "type": ["null", {"type": "array", "items": "double"}]}]}
    avsc = tmp_path / "driver_stats.avsc"
    avsc.write_text(json.dumps(schema))
    values = rows.select(to_avro(F.struct(*rows.columns), json.dumps(schema)).alias("value")).collect()
    produce(spark, topic, [bytes(v.value) for v in values] + [b"\x00\x01garbage"])

    source = KafkaSource(BOOTSTRAP, topic, value_format="avro", avro_schema=str(avsc))
    run_once(FeatureStore(repo, spark=spark), topic, tmp_path / "checkpoint", source)
    assert landed(spark, table) == expected_rows(records)
    dead = spark.read.format("delta").load(f"{table}_dead_letters").collect()
    assert [bytes(d.value) for d in dead] == [b"\x00\x01garbage"] and "is not AVRO" in dead[0].reason


def test_the_cli_streams_a_topic_and_names_a_bad_option(spark, broker, view_table, tmp_path):
    table, repo = view_table
    topic = f"drivers-cli-{uuid.uuid4().hex[:8]}"
    records = [good_record(i, millis=True) for i in range(15)]
    produce(spark, topic, [json.dumps(r).encode() for r in records])
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_SPARK_MASTER": "local[2]"}
    base = [sys.executable, "-m", "featurestore_spark.cli", "--repo", str(repo), "ingest-stream", "--view",
            "driver_hourly_stats", "--checkpoint", str(tmp_path / "checkpoint"), "--available-now",
            "--kafka-bootstrap", BOOTSTRAP, "--topic", topic]
    run = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "driver_hourly_stats: 15 rows in 1 batch(es)" in run.stdout
    assert landed(spark, table) == expected_rows(records)

    bad = subprocess.run(base + ["--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "--format is for --from; Kafka values are read with --value-format" in bad.stderr
    secret = subprocess.run(base + ["--kafka-option", "kafka.sasl.jaas.config=${FSSPARK_TEST_UNSET_SECRET}"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert secret.returncode == 2
    assert ("--kafka-option kafka.sasl.jaas.config uses a ${VARIABLE} that is not set (FSSPARK_TEST_UNSET_SECRET); "
            "export it") in secret.stderr
    pasted = subprocess.run(base + ["--kafka-option", "s3cr3t-token"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert pasted.returncode == 2 and "--kafka-option number 1 is not KEY=VALUE" in pasted.stderr
    assert "s3cr3t" not in pasted.stderr + pasted.stdout
