"""Streaming ingestion: micro-batches into the view's Delta source and Redis, exactly once.

Input files are dropped into a folder read by a file stream (``availableNow``, so each run ends);
the Delta table is compared with the rows as written, Redis is read back through Feast against a
pandas oracle of the newest row per key within the view's ttl (365 days) of now. Event times are
relative to the time the tests run: a batch is pushed as ``materialize`` would push it then.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import redis

from featurestore_spark import FeatureStore, MissingColumnError
from tests.helpers import apply_feast_repo
from tests.test_incremental import DEFS, SCHEMA, assert_served
from tests.test_incremental import rows as rows_at

PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
DB = 4
NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
BASE = NOW - timedelta(days=2)


def rows(spec: list[tuple[int, timedelta]]) -> pd.DataFrame:
    """Rows (driver, event time BASE + dt), as test_incremental makes them."""
    return rows_at(spec, BASE)


def newest(pdf: pd.DataFrame) -> pd.DataFrame:
    """Latest row per driver with event time in [now - 365 days, now] (pandas sort; created breaks ties)."""
    now = datetime.now(timezone.utc)
    pdf = pdf[(pdf["event_timestamp"] <= now) & (pdf["event_timestamp"] >= now - timedelta(days=365))]
    return pdf.sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1).set_index("driver_id")


@pytest.fixture()
def setup(spark, tmp_path):
    data, repo, inbox = tmp_path / "data", tmp_path / "repo", tmp_path / "inbox"
    repo.mkdir()
    inbox.mkdir()
    (repo / "defs.py").write_text(DEFS.replace("{data}", str(data)))
    fs = apply_feast_repo(repo, "stream", PORT, DB)
    return FeatureStore(repo_path=repo, spark=spark), fs, data, inbox, tmp_path / "checkpoint"


def drop(spark, pdf: pd.DataFrame, inbox: Path, name: str) -> None:
    """One input file of the stream (written aside, then moved in whole)."""
    spark.createDataFrame(pdf, SCHEMA).coalesce(1).write.parquet(str(inbox.parent / f"tmp_{name}"))
    part = next((inbox.parent / f"tmp_{name}").glob("part-*.parquet"))
    shutil.move(part, inbox / f"{name}.parquet")


def run(spark, store: FeatureStore, inbox: Path, checkpoint: Path) -> None:
    stream = spark.readStream.schema(SCHEMA).parquet(str(inbox))
    store.ingest_stream("rides", stream, str(checkpoint), trigger={"availableNow": True}).awaitTermination()


def table(spark, data: Path) -> list[tuple]:
    pdf = spark.read.format("delta").load(str(data / "rides")).toPandas()
    pdf["event_timestamp"] = pdf["event_timestamp"].dt.tz_localize("UTC")  # the session's time zone is UTC
    return sorted(pdf[["driver_id", "event_timestamp", "rate", "trips"]].itertuples(index=False, name=None))


def expected(*frames: pd.DataFrame) -> list[tuple]:
    pdf = pd.concat(frames)
    return sorted(pdf[["driver_id", "event_timestamp", "rate", "trips"]].itertuples(index=False, name=None))


def forget_last_batch(checkpoint: Path) -> None:
    """A crash after the last batch's append and before Spark recorded it: the batch runs again on restart."""
    last = max((checkpoint / "commits").glob("[0-9]*"), key=lambda p: int(p.name))
    last.unlink()
    (last.parent / f".{last.name}.crc").unlink(missing_ok=True)  # the local file system's checksum


def squat(client, driver_id: int) -> bytes:
    """Hold the Redis key of ``driver_id`` (project "stream") as a string: the script calls holding it fail."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = serialize_entity_key(EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=driver_id)]), 3)
    client.set(key + b"stream", b"not a hash")
    return key + b"stream"


def test_a_stream_reaches_delta_once_and_redis_newest_first(spark, setup):
    store, fs, data, inbox, checkpoint = setup
    first = rows([(k, timedelta(hours=h, minutes=k)) for k in range(1, 31) for h in (0, 1)])
    drop(spark, first, inbox, "a")
    run(spark, store, inbox, checkpoint)
    assert table(spark, data) == expected(first)
    assert_served(fs, "rides", newest(first))

    # Later files: newer rows for some keys, older (out-of-order) rows for others, new keys; a row
    # dated tomorrow and one older than the ttl reach the table but not Redis.
    second = rows([(k, timedelta(hours=3)) for k in range(1, 11)] + [(k, timedelta(minutes=5)) for k in range(11, 21)]
                  + [(k, timedelta(hours=2)) for k in range(31, 41)] + [(41, timedelta(days=3)), (42, -timedelta(days=400))])
    drop(spark, second, inbox, "b")
    run(spark, store, inbox, checkpoint)
    everything = pd.concat([first, second])
    assert table(spark, data) == expected(first, second)
    assert 41 not in newest(everything).index and 42 not in newest(everything).index
    assert_served(fs, "rides", newest(everything))  # older rows did not overwrite newer

    # A crash after the batch's append and before Spark recorded it: the batch runs again on restart,
    # its push too (Redis emptied to see it).
    forget_last_batch(checkpoint)
    redis.Redis(port=PORT, db=DB).flushdb()
    run(spark, store, inbox, checkpoint)
    assert table(spark, data) == expected(first, second)  # not appended twice
    assert_served(fs, "rides", newest(second))

    # A new checkpoint (the old one deleted) reads the inbox from the start: a new query, whose
    # batches are appended, not taken for the old query's.
    shutil.rmtree(checkpoint)
    third = rows([(k, timedelta(hours=4)) for k in range(1, 6)])
    drop(spark, third, inbox, "c")
    run(spark, store, inbox, checkpoint)
    assert table(spark, data) == expected(first, second, first, second, third)
    assert_served(fs, "rides", newest(pd.concat([first, second, third])))


def test_a_stream_without_the_views_columns_fails_before_it_starts(spark, setup):
    store, _, _, inbox, checkpoint = setup
    stream = spark.readStream.schema("driver_id long, created timestamp, rate double, trips long").parquet(str(inbox))
    with pytest.raises(MissingColumnError, match=r"column 'event_timestamp'"):
        store.ingest_stream("rides", stream, str(checkpoint))
    assert not checkpoint.exists() and not spark.streams.active


def test_a_batch_redis_refuses_stops_the_query_and_a_restart_pushes_it(spark, setup):
    """A key held by another program as a string: the batch's push fails, so does the query (naming
    the failure); once the key is cleared, a restart from the checkpoint runs the batch again: the
    append is skipped, the push completes."""
    from pyspark.errors import StreamingQueryException

    store, fs, data, inbox, checkpoint = setup
    client = redis.Redis(port=PORT, db=DB)
    squatted = squat(client, 7)
    batch = rows([(k, timedelta(hours=1, minutes=k)) for k in range(1, 21)])
    drop(spark, batch, inbox, "a")
    with pytest.raises(StreamingQueryException, match=r"feature view 'rides', batch 0: \d+ key\(s\) were not written "
                       r"to Redis \(.*WRONGTYPE.*\); .*restart the query from its checkpoint"):
        run(spark, store, inbox, checkpoint)
    assert table(spark, data) == expected(batch)  # the append happened before the push

    client.delete(squatted)
    run(spark, store, inbox, checkpoint)
    assert table(spark, data) == expected(batch)
    assert_served(fs, "rides", newest(batch))


def test_the_cli_streams_a_delta_table_into_a_view(spark, setup, capsys):
    """``fsspark ingest-stream --from <Delta table> --available-now``: a bronze table's rows into the view's
    source and Redis; a second run with the same checkpoint takes only the rows added since."""
    from featurestore_spark.cli import main as cli

    store, fs, data, inbox, checkpoint = setup
    bronze = str(data.parent / "bronze")
    first = rows([(k, timedelta(hours=1, minutes=k)) for k in range(1, 16)])
    spark.createDataFrame(first, SCHEMA).write.format("delta").save(bronze)
    args = ["--repo", str(store.repo.repo_path), "ingest-stream", "--view", "rides", "--from", bronze,
            "--checkpoint", str(checkpoint), "--available-now"]
    assert cli(args) == 0
    assert "rides: 15 rows in 1 batch(es)" in capsys.readouterr().out
    second = rows([(k, timedelta(hours=2)) for k in range(10, 21)])
    spark.createDataFrame(second, SCHEMA).write.format("delta").mode("append").save(bronze)
    assert cli(args) == 0
    assert "rides: 11 rows in 1 batch(es)" in capsys.readouterr().out
    assert table(spark, data) == expected(first, second)
    assert_served(fs, "rides", newest(pd.concat([first, second])))
    assert cli(args[:-1] + ["--available-now", "--view", "nope"]) == 2
    assert "unknown feature view 'nope'" in capsys.readouterr().err.lower()


def test_a_stream_into_a_catalog_table_source_is_appended_once(spark, setup):
    """A view whose source is a table name: batches go in with saveAsTable, once, also when one runs again."""
    import dataclasses

    from featurestore_spark.ingest import ingest_stream
    from featurestore_spark.online.settings import redis_settings

    store, fs, _, inbox, checkpoint = setup
    name = "fsspark_stream_rides"
    view = store.repo.views["rides"]
    view = dataclasses.replace(view, source=dataclasses.replace(view.source, path=None, table=name))
    settings = redis_settings(dict(store.repo.online_store))
    batch = rows([(k, timedelta(hours=1, minutes=k)) for k in range(1, 21)])
    drop(spark, batch, inbox, "a")

    def run_table() -> None:
        stream = spark.readStream.schema(SCHEMA).parquet(str(inbox))
        ingest_stream(spark, store.repo, view, stream, str(checkpoint), settings,
                      trigger={"availableNow": True}).awaitTermination()

    try:
        run_table()  # creates the table
        forget_last_batch(checkpoint)
        run_table()  # the batch again: not appended twice
        pdf = spark.table(name).toPandas()
        pdf["event_timestamp"] = pdf["event_timestamp"].dt.tz_localize("UTC")
        assert sorted(pdf[["driver_id", "event_timestamp", "rate", "trips"]].itertuples(index=False, name=None)) == \
            expected(batch)
        assert_served(fs, "rides", newest(batch))
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_the_cli_exits_3_when_a_push_fails_and_2_on_a_bad_source(spark, setup, capsys):
    """The batch's Redis failure is named (view, batch, Redis's answer) and exits 3; the same command
    then resumes and completes. A source that is not there exits 2 without a traceback."""

    from featurestore_spark.cli import main as cli

    store, fs, data, _, checkpoint = setup
    client = redis.Redis(port=PORT, db=DB)
    squatted = squat(client, 4)
    bronze = str(data.parent / "bronze")
    batch = rows([(k, timedelta(minutes=k)) for k in range(1, 11)])
    spark.createDataFrame(batch, SCHEMA).write.format("delta").save(bronze)
    args = ["--repo", str(store.repo.repo_path), "ingest-stream", "--view", "rides", "--from", bronze,
            "--checkpoint", str(checkpoint), "--available-now"]
    capsys.readouterr()
    assert cli(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("fsspark: error: feature view 'rides', batch 0: ") and "WRONGTYPE" in err, err
    assert "restart the query from its checkpoint" in err and "Traceback" not in err
    client.delete(squatted)
    assert cli(args) == 0
    assert table(spark, data) == expected(batch)
    assert_served(fs, "rides", newest(batch))

    missing = ["--repo", str(store.repo.repo_path), "ingest-stream", "--view", "rides", "--from",
               str(data.parent / "nothing_here"), "--checkpoint", str(checkpoint.parent / "chk2"), "--available-now"]
    assert cli(missing) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fsspark: error: cannot stream {data.parent / 'nothing_here'} into 'rides': ") and \
        "Traceback" not in err, err
