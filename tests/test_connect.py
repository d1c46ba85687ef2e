"""The engine over Spark Connect (``scripts/connect.sh``: a server with Delta on 127.0.0.1), against the
same calls on the tests' classic session.

The client runs in a process of its own (``tests/connect_client.py``): a Connect session turns
PySpark's functions to Connect mode process-wide. Results must equal the classic session's: tables row
for row, Redis hashes byte for byte, reports and freshness lines as equal values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from featurestore_spark import FeatureStore
from featurestore_spark.demo_data import write_demo_data
from tests.connect_client import END, NOW, START
from tests.redis_servers import PORT_BASE, redis_server
from tests.services import example_repo, script_service
from tests.services import hashes as redis_hashes

pytestmark = pytest.mark.connect

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("FSSPARK_CONNECT_PORT", "15002"))
URL = f"sc://127.0.0.1:{PORT}"
REDIS = PORT_BASE + 150


@pytest.fixture(scope="module")
def connect_server():
    """The server of ``scripts/connect.sh``, started for this module unless it was running already."""
    with script_service("connect.sh", "connect server: running"):
        yield URL


def repo_copy(folder: Path, db: int, view_path: Path | None = None) -> Path:
    return example_repo(folder, REDIS, db, view_path)


def hashes(db: int) -> dict:
    return redis_hashes(REDIS, db)


def recent(rows):
    """The last 12 hours of rows, moved to end an hour ago: a stream pushes what is within the view's
    ttl (1 day) of the batch's time."""
    # Micros: PySpark hands a timestamp back in the local time zone, which need not be UTC.
    newest_us = rows.agg(F.max(F.unix_micros("event_timestamp"))).first()[0]
    newest = datetime.fromtimestamp(0, timezone.utc) + timedelta(microseconds=newest_us)
    shift = F.expr(f"INTERVAL {int((datetime.now(timezone.utc) - timedelta(hours=1) - newest).total_seconds())} SECONDS")
    return (rows.where(F.col("event_timestamp") >= F.lit(newest - timedelta(hours=12)))
            .withColumn("event_timestamp", F.col("event_timestamp") + shift)
            .withColumn("created", F.col("created") + shift))


def same_rows(spark, a, b) -> bool:
    return a.columns == b.columns and a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_every_capability_over_connect_equals_a_classic_session(spark, connect_server, tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("FSSPARK_DATA_DIR", str(data))
    write_demo_data(spark, str(data), rows=2000, entity_rows_count=1000, n_entities=100)
    inbox, target = tmp_path / "inbox", tmp_path / "stream_target"
    source = recent(spark.read.format("delta").load(str(data / "driver_hourly_stats")))
    source.write.parquet(str(inbox))
    source.limit(0).write.format("delta").save(str(target))

    with redis_server(REDIS, tmp_path / "redis"):
        repo_copy(tmp_path / "repo_connect", db=1)
        repo_copy(tmp_path / "repo_connect_incremental", db=3)
        repo_copy(tmp_path / "repo_stream", db=5, view_path=target)
        partitions = spark.conf.get("spark.sql.shuffle.partitions")
        client = subprocess.run([sys.executable, str(ROOT / "tests" / "connect_client.py"), connect_server, str(tmp_path),
                                 partitions],
                                cwd=ROOT, env={**os.environ, "FSSPARK_DATA_DIR": str(data)},
                                capture_output=True, text=True, timeout=900)
        assert client.returncode == 0, client.stderr[-4000:]
        got = json.loads((tmp_path / "results.json").read_text())

        # The same calls on the classic session.
        store = FeatureStore(repo_copy(tmp_path / "repo_classic", db=2), spark=spark,
                             catalog=str(tmp_path / "catalog_classic"), state_path=str(tmp_path / "watermarks_classic"))
        expected = store.get_historical_features(str(data / "entities"), "ride_ranking")
        assert same_rows(spark, spark.read.format("delta").load(str(tmp_path / "historical")), expected)
        assert got["explain"] == store.explain_historical_features(str(data / "entities"), "ride_ranking")

        built = spark.read.format("delta").load(str(tmp_path / "training_set"))
        assert same_rows(spark, built, expected)
        assert same_rows(spark, spark.read.format("delta").load(str(tmp_path / "reproduced")), built)
        classic = store.create_training_set({"name": "ride_ranking", "entities": {"delta": str(data / "entities")},
                                             "features": "ride_ranking", "output": {"path": str(tmp_path / "ts_classic")}})
        assert got["built"] == {"version": 0, "rows_out": classic.manifest["rows_out"],
                                "null_counts": classic.manifest["null_counts"]}
        manifests = list((tmp_path / "training_set" / "_fsspark").glob("manifest-v*.json"))
        assert [json.loads(m.read_text())["rows_out"] for m in manifests] == [classic.manifest["rows_out"]]
        assert got["reproduced_version"] == 0 and got["catalog_builds"] == 2  # the build and its rebuild
        assert got["second_build_error"] == "OutputExistsError"
        assert "nothing_here" in got["missing_manifest_error"]

        reports = store.materialize(START, END)
        assert got["materialize"] == [[r.view, r.rows, r.written, r.skipped, r.failed] for r in reports]
        assert len(hashes(1)) > 0 and hashes(1) == hashes(2)  # byte for byte
        incremental = FeatureStore(repo_copy(tmp_path / "repo_classic_incremental", db=4), spark=spark,
                                   state_path=str(tmp_path / "watermarks_classic")).materialize_incremental(END)
        assert got["incremental"] == [[r.view, r.rows, r.written, r.failed] for r in incremental]
        assert hashes(3) == hashes(4)
        assert got["freshness"] == [f.summary() for f in store.freshness(now=NOW)]

        assert got["stream_rows"] == source.count()
        now = datetime.now(timezone.utc)
        FeatureStore(repo_copy(tmp_path / "repo_stream_classic", db=6, view_path=target), spark=spark).materialize(
            now - timedelta(days=1), now, ["driver_hourly_stats"])
        assert len(hashes(5)) > 0 and hashes(5) == hashes(6)


def test_a_connect_server_that_is_not_there_is_named(tmp_path):
    probe = "from featurestore_spark.session import connect_session; connect_session('sc://127.0.0.1:1')"
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "the Spark Connect server at sc://127.0.0.1:1 does not answer" in run.stderr


def test_the_notebook_runs_over_connect(spark, connect_server, tmp_path, monkeypatch):
    """notebooks/training_set.ipynb with $SPARK_REMOTE set: its build_session call gives a Connect
    client, and every cell (example data, build, manifest, rebuild) runs through the server."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "training_set.ipynb", as_version=4)
    monkeypatch.setenv("FSSPARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPARK_REMOTE", connect_server)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "identical rows: True" in text
    written = spark.read.format("delta").load(str(tmp_path / "training_sets" / "ride_ranking_notebook"))
    manifest = json.loads(next((tmp_path / "training_sets" / "ride_ranking_notebook" / "_fsspark").glob("*.json")).read_text())
    assert manifest["rows_out"] == written.count() == 2000
    assert manifest["null_counts"]["conv_rate"] == written.where("conv_rate IS NULL").count()
    assert f"training set ride_ranking_notebook: {written.count():,} rows in " in text
