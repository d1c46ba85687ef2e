"""Redis push benchmark: the engine vs Feast's materialization vs a plain redis-py pipeline vs the server.

One run, one Redis on loopback (database 7 is flushed between contenders), the same view:
N entity keys x 5 features (float32, float64, int64, int64, string) in a Delta table. The engine is
timed twice: onto an empty database (every key new: created by RESTORE), and onto the keys a push of
the same keys' older rows left (every key checked by the newer-wins script, and written).

    .venv/bin/python benchmarks/redis_push.py --keys 1000000 --port 6379
    .venv/bin/python benchmarks/redis_push.py --keys 1000000 --timeline   # also when the server works

With --timeline, each engine run also prints when its first key landed and how busy the server's main
thread was before and after that (``DBSIZE`` and ``INFO cpu`` polled every 0.1 s from a second connection).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis

DB = 7
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The view's features and the field of Feast's Value proto that holds each.
VALUE_KINDS = {"f_float": "float_val", "f_double": "double_val", "f_long": "int64_val", "f_count": "int64_val",
               "f_label": "string_val"}

REPO_PY = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float32, Float64, Int64, String
from feast.value_type import ValueType
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
bench_stats = FeatureView(
    name="bench_stats", entities=[driver], ttl=timedelta(days=30),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="f_float", dtype=Float32),
            Field(name="f_double", dtype=Float64), Field(name="f_long", dtype=Int64),
            Field(name="f_count", dtype=Int64), Field(name="f_label", dtype=String)],
    source=SparkSource(name="bench_source", path="{path}", table_format=DeltaFormat(),
                       timestamp_field="event_timestamp"),
)
'''


def timeline(port: int, fn) -> None:
    """Run ``fn`` while polling the server; print when the first key landed and the main thread's load."""
    samples: list[tuple[float, int, float]] = []
    done = threading.Event()

    def poll() -> None:
        c = redis.Redis(port=port, db=DB)
        while not done.is_set():
            cpu = c.info("cpu")
            samples.append((time.perf_counter(), c.dbsize(), cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"]))
            time.sleep(0.1)

    t0 = time.perf_counter()
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    fn()
    done.set()
    thread.join()
    first = next((i for i, (_, keys, _) in enumerate(samples) if keys), len(samples) - 1)
    (ta, _, ca), (tb, _, cb), (tz, _, cz) = samples[0], samples[first], samples[-1]
    print(f"    timeline: first key after {tb - t0:.1f} s (server {(cb - ca) / max(tb - ta, 1e-9):.0%} busy till then), "
          f"then the server {(cz - cb) / max(tz - tb, 1e-9):.0%} busy for {tz - tb:.1f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--port", type=int, default=int(os.environ.get("FSSPARK_REDIS_PORT", "6379")))
    p.add_argument("--feast-max-keys", type=int, default=1_000_000, help="skip Feast above this many keys")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per contender; the best counts (the first run of a plan shape pays JIT and start-up)")
    p.add_argument("--timeline", action="store_true", help="print when the engine's first key lands and the server's load")
    args = p.parse_args()

    import feast
    from pyspark.sql import functions as F

    from featurestore_spark import FeatureStore, build_session
    from featurestore_spark.online.materialize import materialize_view
    from featurestore_spark.online.redis_layout import encode_entity_keys, field_hash
    from featurestore_spark.repo import _import_definitions

    work = Path(tempfile.mkdtemp(prefix="fsspark-redis-bench-"))
    spark = build_session("local", app_name="bench-redis-push", extra_conf={"spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    path = str(work / "bench_stats")
    spark.range(args.keys).select(
        (F.col("id") + 1000).alias("driver_id"),
        F.timestamp_seconds(F.lit(int(START.timestamp())) + F.col("id") % 86400).alias("event_timestamp"),
        F.rand(1).cast("float").alias("f_float"), F.rand(2).alias("f_double"),
        (F.rand(3) * 1e9).cast("bigint").alias("f_long"), (F.rand(4) * 100).cast("bigint").alias("f_count"),
        F.concat(F.lit("label-"), (F.col("id") % 97).cast("string")).alias("f_label"),
    ).write.format("delta").mode("overwrite").save(path)
    # The same keys a day later, other values: pushed onto the first table's keys, every key is updated.
    later = str(work / "bench_stats_later")
    spark.read.format("delta").load(path).select(
        "driver_id", (F.col("event_timestamp") + F.expr("INTERVAL 1 DAY")).alias("event_timestamp"),
        *[(F.col(f) + 1).alias(f) if f != "f_label" else F.concat(F.col(f), F.lit("+")).alias(f)
          for f in ("f_float", "f_double", "f_long", "f_count", "f_label")],
    ).write.format("delta").mode("overwrite").save(later)

    def make_repo(name: str, source: str) -> Path:
        repo = work / name
        repo.mkdir()
        (repo / "defs.py").write_text(REPO_PY.replace("{path}", source))
        (repo / "feature_store.yaml").write_text(
            f"project: bench\nregistry: {repo}/registry.db\nprovider: local\noffline_store:\n  type: spark\n"
            f"online_store:\n  type: redis\n  connection_string: \"127.0.0.1:{args.port},db={DB}\"\n"
            "entity_key_serialization_version: 3\n"
        )
        return repo

    repo = make_repo("repo", path)
    client = redis.Redis(port=args.port, db=DB)
    store = FeatureStore(repo_path=repo, spark=spark)
    view = store.repo.views["bench_stats"]
    next_store = FeatureStore(repo_path=make_repo("repo_later", later), spark=spark)
    from featurestore_spark.online.settings import redis_settings

    settings = redis_settings(dict(store.repo.online_store))
    end = START + timedelta(days=2)
    rates = {}

    def check(report, created: int) -> None:
        assert report.ok and report.written == args.keys and report.created == created, report

    def run(label: str, fn, before=lambda: None) -> None:
        for attempt in range(args.repeat):
            client.flushdb()
            before()
            t = time.perf_counter()
            fn()
            s = time.perf_counter() - t
            assert client.dbsize() == args.keys, (label, client.dbsize())
            rates[label] = max(rates.get(label, 0.0), args.keys / s)
            print(f"  {label:<34} {s:7.1f} s {args.keys / s:>10,.0f} keys/s (run {attempt + 1})", flush=True)

    print(f"{args.keys} keys x 5 features, Redis on 127.0.0.1:{args.port}")
    materialize_view(spark, store.repo, view, settings, START, START + timedelta(seconds=10))  # warm-up
    push = lambda: check(materialize_view(spark, store.repo, view, settings, START, end), args.keys)  # noqa: E731
    run("engine (materialize_view)", (lambda: timeline(args.port, push)) if args.timeline else push)
    # Every key holds the view's older row: each is checked by the newer-wins script, and written.
    later_view = next_store.repo.views["bench_stats"]
    run("engine, updating every key", lambda: check(
        materialize_view(spark, next_store.repo, later_view, settings, START, end + timedelta(days=1)), 0),
        before=lambda: materialize_view(spark, store.repo, view, settings, START, end))

    rows = spark.read.format("delta").load(path).toArrow()
    keys = encode_entity_keys({"driver_id": rows.column("driver_id").combine_chunks()}, {"driver_id": "INT64"},
                              "bench").to_pylist()
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    cols = {f: rows.column(f).to_pylist() for f in VALUE_KINDS}
    fields = {f: field_hash("bench_stats", f) for f in cols}

    ts = Timestamp(seconds=int(START.timestamp())).SerializeToString()

    def plain() -> None:
        pipe = client.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.hset(key, mapping={
                b"_ts:bench_stats": ts,
                **{fields[f]: Value(**{kind: cols[f][i]}).SerializeToString() for f, kind in VALUE_KINDS.items()},
            })
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    run("plain redis-py pipelined HSET", plain)

    if args.keys <= args.feast_max_keys:
        fs = feast.FeatureStore(repo_path=str(repo))
        fs.apply(_import_definitions(repo))
        # Feast skips nothing on a flushed Redis: every run writes every key, as the engine's runs do.
        run("Feast materialize", lambda: fs.materialize(START - timedelta(days=1), end, ["bench_stats"]))

    # The ceiling sends HSETs of the engine's own shape: keys as long as Feast's encoded keys, the same
    # field names, values as long as the encoded values on average, and N distinct new keys (a random
    # range of 10^9: ``-r N`` would repeat a third of them, and updating a hash is cheaper than adding one).
    sample = range(min(args.keys, 10_000))
    sizes = [len(ts)] + [round(sum(len(Value(**{kind: cols[f][i]}).SerializeToString()) for i in sample) / len(sample))
                         for f, kind in VALUE_KINDS.items()]
    key = "k" * (round(sum(len(keys[i]) for i in sample) / len(sample)) - len("000000000000")) + "__rand_int__"
    names = ["_ts:bench_stats", *[f"f{i:03d}" for i in range(len(fields))]]  # Feast's field names: 4-byte hashes
    pairs = [x for name, size in zip(names, sizes) for x in (name, "x" * size)]
    ceiling = 0.0
    for _ in range(args.repeat):  # the best run counts, as for the contenders
        client.flushdb()
        bench = subprocess.run(
            ["redis-benchmark", "-p", str(args.port), "--dbnum", str(DB), "-n", str(args.keys), "-r", "1000000000",
             "-P", "64", "-q", "hset", key, *pairs],
            capture_output=True, text=True, check=True,
        )
        ceiling = max(ceiling, float(re.findall(r"([\d.]+) requests per second", bench.stdout)[-1]))
    print(f"  ceiling's shape: {len(key)}-byte keys, value bytes {sizes}, {client.dbsize()} distinct keys")
    rates["ceiling"] = ceiling
    print(f"  {'redis-benchmark -P 64 HSET (ceiling)':<34} {'':>9} {ceiling:>10,.0f} keys/s")
    e = rates["engine (materialize_view)"]
    print(f"  engine / plain pipeline: {e / rates['plain redis-py pipelined HSET']:.1f}x")
    print(f"  engine updating every key / ceiling: {rates['engine, updating every key'] / ceiling:.2f}")
    if "Feast materialize" in rates:
        print(f"  engine / Feast: {e / rates['Feast materialize']:.1f}x")
    print(f"  engine / ceiling: {e / ceiling:.2f}")
    client.flushdb()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
