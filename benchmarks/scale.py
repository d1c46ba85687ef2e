"""Scale benchmark: the point-in-time join from millions to tens of millions of entity rows.

One Spark session (driver memory --driver-memory, 4g by default); the example repo's three views at
--feature-rows rows each; entity rows drawn under a key law:

  uniform        driver and customer keys uniform over --entities
  zipf           Zipf s=1 entity keys (the demo's law: a few hot drivers and customers)
  zipf-features  Zipf s=1 entity keys and Zipf s=1 feature keys (hot entities also update more often)
  hot-key        one driver/customer pair holds 20% of the entity rows, the rest uniform

Contenders: the engine, the textbook range join (benchmarks/pit_join.py's) and dbl-tempo's asofJoin
(skipNulls=False, sequence_col=created_timestamp, tolerance=ttl), each at most --time-limit seconds
(reported "> N s"; the engine is not capped). Each contender's first call in the process is its cold run, the next its warm run.
Per run: seconds, rows/s, peak RSS of the driver JVM, shuffle written, bytes spilled, and the engine's
buckets per key set. Outputs are written to Delta and compared between contenders.

    .venv/bin/python benchmarks/scale.py --laws uniform,hot-key --entity-rows 5000000,20000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [
    "driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips",
    "customer_profile:current_balance", "customer_profile:lifetime_trip_count", "customer_profile:segment",
    "driver_customer_stats:trips_together", "driver_customer_stats:avg_pair_rating",
]
LAWS = ("uniform", "zipf", "zipf-features", "hot-key")


def entity_rows(spark: SparkSession, rows: int, n_entities: int, law: str) -> DataFrame:
    """Entity rows under ``law``, with the demo's columns and time span."""
    from featurestore_spark import demo_data as d

    s = 42 + 7919
    skew = 0.0 if law in ("uniform", "hot-key") else 1.0
    driver, customer = d.driver_id_col(s, n_entities, skew), d.customer_id_col(s, n_entities, skew)
    if law == "hot-key":  # the same pair, so each of the three key sets has a key with 20% of the rows
        hot = d._u(s, "hot") < F.lit(0.2)
        driver = F.when(hot, F.lit(1001).cast("bigint")).otherwise(driver)
        customer = F.when(hot, F.lit("C0000001")).otherwise(customer)
    return spark.range(rows).select(
        driver.alias("driver_id"), customer.alias("customer_id"),
        d._ts(s, "ets", d.DEFAULT_START, 30.0).alias("event_timestamp"), (d._u(s, "label") < 0.3).cast("int").alias("label"),
    )


def tempo_join(spark: SparkSession, store, entity: DataFrame) -> DataFrame:
    """dbl-tempo's as-of join, one view after the other, in its correct setting (skipNulls=False: a
    null feature in the latest row stays null; ties on event time broken by the created timestamp)."""
    from tempo import TSDF

    from featurestore_spark.columns import CREATED, TS, key_col
    from featurestore_spark.offline.refs import parse_refs, resolve
    from featurestore_spark.sources import read_view

    requests = resolve(store.repo, parse_refs(store.repo, FEATURES), full_feature_names=False, entity_columns=entity.columns)
    out = entity
    for r in requests:
        keys = [k.name for k in r.view.join_keys]
        right = read_view(spark, r.view, r.features).select(
            *[F.col(key_col(i)).alias(k) for i, k in enumerate(keys)], F.col(TS).alias("event_timestamp"),
            F.col(CREATED).alias("created_timestamp"), *r.features)
        ttl = int(r.view.ttl.total_seconds()) if r.view.ttl is not None else None
        joined = TSDF(out, ts_col="event_timestamp", partition_cols=keys).asofJoin(
            TSDF(right, ts_col="event_timestamp", partition_cols=keys, sequence_col="created_timestamp"),
            right_prefix="r", skipNulls=False, tolerance=ttl, suppress_null_warning=True).df
        out = joined.select(*out.columns, *[F.col(f"r_{f}").alias(f) for f in r.features])
    return out


class Probe:
    """Peak RSS of the driver JVM (sampled), and shuffle/spill bytes from Spark's status REST API."""

    def __init__(self, spark: SparkSession):
        self.ui = spark.sparkContext.uiWebUrl
        self.app = spark.sparkContext.applicationId
        self.jvm = next(p for p in psutil.Process().children(recursive=True) if "java" in p.name())
        self.peak = 0
        self._stop = threading.Event()

    def _stages(self) -> dict:
        with urllib.request.urlopen(f"{self.ui}/api/v1/applications/{self.app}/stages?status=complete") as r:
            stages = json.load(r)
        return {k: sum(s.get(k, 0) for s in stages) for k in ("shuffleWriteBytes", "memoryBytesSpilled", "diskBytesSpilled")}

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.jvm.memory_info().rss)

    def __enter__(self) -> Probe:
        self.before, self.peak = self._stages(), self.jvm.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        after = self._stages()
        self.delta = {k: after[k] - self.before[k] for k in after}


def run_capped(spark: SparkSession, fn, limit: float) -> float | None:
    """Seconds ``fn`` took, or None when it ran past ``limit`` and its jobs were cancelled."""
    timer = threading.Timer(limit, spark.sparkContext.cancelAllJobs)
    if limit != float("inf"):
        timer.start()
    t = time.perf_counter()
    try:
        fn()
        return time.perf_counter() - t
    except Exception:
        if time.perf_counter() - t >= limit:
            return None
        raise
    finally:
        timer.cancel()


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entity-rows", default="5000000,20000000,50000000", help="comma-separated entity row counts")
    p.add_argument("--feature-rows", type=int, default=5_000_000, help="rows per feature view")
    p.add_argument("--entities", type=int, default=100_000)
    p.add_argument("--laws", default="uniform,zipf,zipf-features,hot-key", help=f"comma-separated, of {', '.join(LAWS)}")
    p.add_argument("--contenders", default="engine,textbook,tempo")
    p.add_argument("--contender-max-rows", type=int, default=20_000_000, help="textbook and Tempo only up to this size")
    p.add_argument("--time-limit", type=float, default=900.0, help="seconds before a contender's run is cancelled")
    p.add_argument("--repeat", type=int, default=2, help="runs per contender at its first size (cold, then warm)")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    p.add_argument("--work", default=None, help="folder for data and outputs (kept between runs; default: a temp folder)")
    args = p.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="fsspark-scale-"))
    from pit_join import textbook

    from featurestore_spark import FeatureStore, build_session
    from featurestore_spark.demo_data import write_demo_data
    from featurestore_spark.offline import retrieval

    spark = build_session("local", app_name="bench-scale", extra_conf={
        "spark.driver.memory": args.driver_memory, "spark.ui.enabled": "true", "spark.ui.port": "4077",
        "spark.ui.showConsoleProgress": "false", "spark.ui.retainedStages": "100000", "spark.ui.retainedJobs": "100000",
        "spark.sql.shuffle.partitions": str(args.partitions)})
    spark.sparkContext.setLogLevel("ERROR")
    contenders = {"engine": None, "textbook": textbook, "tempo": tempo_join}
    chosen = [c for c in args.contenders.split(",") if c]
    sizes = [int(x) for x in args.entity_rows.split(",")]
    first_run: set[str] = set()
    print(f"driver memory {args.driver_memory}, {args.partitions} shuffle partitions, {os.cpu_count()} cores, "
          f"3 views x {args.feature_rows:,} rows, {args.entities:,} entities, time limit {args.time_limit:.0f} s", flush=True)
    print("| law | entity rows | contender | run | seconds | rows/s | driver RSS peak | shuffle written | spilled | buckets |",
          flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for law in args.laws.split(","):
        skew = 1.0 if law == "zipf-features" else 0.0
        data = work / f"data_{args.feature_rows}_skew{skew:g}"
        os.environ["FSSPARK_DATA_DIR"] = str(data)
        if not (data / "driver_customer_stats" / "_delta_log").exists():
            t = time.perf_counter()
            write_demo_data(spark, str(data), rows=args.feature_rows, entity_rows_count=1, n_entities=args.entities,
                            feature_skew=skew)
            print(f"(generated 3 x {args.feature_rows:,} feature rows, feature key skew {skew:g}, in "
                  f"{time.perf_counter() - t:.0f} s)", flush=True)
        store = FeatureStore(repo_path=ROOT / "feature_repo", spark=spark)
        for n in sizes:
            ents_path = work / f"entities_{law}_{n}"
            if not (ents_path / "_delta_log").exists():
                entity_rows(spark, n, args.entities, law).write.format("delta").mode("overwrite").save(str(ents_path))
            ents = spark.read.format("delta").load(str(ents_path))
            plan = retrieval.prepare(spark, store.repo, ents, FEATURES).plan
            buckets = ", ".join(f"{'+'.join(g.join_keys)}: {g.buckets}" for g in plan.groups)
            outputs = {}
            for name in chosen:
                if name != "engine" and n > args.contender_max_rows:
                    continue
                out = str(work / f"out_{name}_{law}_{n}")
                join = contenders[name]

                def build(join=join, out=out):
                    df = store.get_historical_features(ents, FEATURES) if join is None else join(spark, store, ents)
                    df.write.format("delta").mode("overwrite").save(out)

                runs = args.repeat if name not in first_run else 1
                for _ in range(runs):
                    kind = "cold" if name not in first_run else "warm"
                    first_run.add(name)
                    with Probe(spark) as probe:  # the engine is what is measured: only its peers are capped
                        secs = run_capped(spark, build, args.time_limit if name != "engine" else float("inf"))
                    shown = f"> {args.time_limit:.0f}" if secs is None else f"{secs:.1f}"
                    rate = "" if secs is None else f"{n / secs:,.0f}"
                    print(f"| {law} | {n:,} | {name} | {kind} | {shown} | {rate} | {gib(probe.peak)} | "
                          f"{gib(probe.delta['shuffleWriteBytes'])} | "
                          f"{gib(probe.delta['memoryBytesSpilled'] + probe.delta['diskBytesSpilled'])} | "
                          f"{buckets if name == 'engine' else ''} |", flush=True)
                    if secs is None:
                        break
                    outputs[name] = out
            if "engine" in outputs:
                engine = spark.read.format("delta").load(outputs["engine"])
                for other in [o for o in outputs if o != "engine"]:
                    theirs = spark.read.format("delta").load(outputs[other]).select(*engine.columns)
                    diff = engine.exceptAll(theirs).count() + theirs.exceptAll(engine).count()
                    print(f"(agreement {law} {n:,}: engine vs {other}: {diff} differing rows)", flush=True)
            for name in outputs:
                shutil.rmtree(outputs[name], ignore_errors=True)


if __name__ == "__main__":
    main()
