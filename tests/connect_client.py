"""Every public capability of the engine, run from a Spark Connect client, as a notebook on shared
compute would: ``python tests/connect_client.py <url> <work folder> <shuffle partitions>``.

It runs in its own process because a Connect session switches PySpark's functions to Connect mode
for the whole process (``SPARK_CONNECT_MODE_ENABLED``), which the tests' classic session cannot share.
What it builds lands in the work folder (tables, manifests, ``results.json``); ``test_connect.py``
compares it with the same calls made on a classic session.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from featurestore_spark import FeatureStore
from featurestore_spark.errors import RequestError
from featurestore_spark.runtime import is_connect
from featurestore_spark.session import connect_session

START, END = datetime(2025, 12, 1, tzinfo=timezone.utc), datetime(2026, 3, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)


def main(url: str, work: Path, partitions: str) -> None:
    # The classic session's shuffle partitions (the caller's), so that the plans and explain's text match.
    spark = connect_session(url, app_name="fsspark-connect-test", conf={"spark.sql.shuffle.partitions": partitions})
    assert is_connect(spark)
    data = work / "data"
    out: dict = {}
    store = FeatureStore(work / "repo_connect", spark=spark, catalog=str(work / "catalog"),
                         state_path=str(work / "watermarks_connect"))

    hist = store.get_historical_features(str(data / "entities"), "ride_ranking")
    hist.write.format("delta").save(str(work / "historical"))
    out["explain"] = store.explain_historical_features(str(data / "entities"), "ride_ranking")

    request = {"name": "ride_ranking", "entities": {"delta": str(data / "entities")}, "features": "ride_ranking",
               "output": {"path": str(work / "training_set")}}
    built = store.create_training_set(request)
    out["built"] = {"version": built.version, "rows_out": built.manifest["rows_out"],
                    "null_counts": built.manifest["null_counts"]}
    again = store.reproduce_training_set(str(work / "training_set"), {"path": str(work / "reproduced")})
    out["reproduced_version"] = again.version
    out["catalog_builds"] = len(store.training_sets("ride_ranking"))
    try:  # a bad request is refused with the same clear error as on a classic session
        store.create_training_set({**request, "output": {"path": str(work / "training_set")}})
    except Exception as exc:  # noqa: BLE001 (the type is what is compared)
        out["second_build_error"] = type(exc).__name__
    try:
        store.reproduce_training_set(str(work / "nothing_here"), {"path": str(work / "x")})
    except RequestError as exc:
        out["missing_manifest_error"] = str(exc)

    out["materialize"] = [[r.view, r.rows, r.written, r.skipped, r.failed] for r in store.materialize(START, END)]
    out["incremental"] = [[r.view, r.rows, r.written, r.failed] for r in
                          FeatureStore(work / "repo_connect_incremental", spark=spark,
                                       state_path=str(work / "watermarks_connect")).materialize_incremental(END)]
    out["freshness"] = [f.summary() for f in store.freshness(now=NOW)]

    stream_store = FeatureStore(work / "repo_stream", spark=spark, state_path=str(work / "watermarks_stream"))
    inbox = str(work / "inbox")
    stream = spark.readStream.schema(spark.read.parquet(inbox).schema).parquet(inbox)
    query = stream_store.ingest_stream("driver_hourly_stats", stream, str(work / "checkpoint"),
                                       trigger={"availableNow": True})
    query.awaitTermination()
    out["stream_rows"] = spark.read.format("delta").load(str(work / "stream_target")).count()
    (work / "results.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
