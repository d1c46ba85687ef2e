"""The jobs on a real Spark standalone cluster: a master and two workers, each its own JVM
(``scripts/cluster.sh``), jobs sent with ``spark-submit --master spark://127.0.0.1:<port>``.

Results must equal local mode's: the training set row for row against the engine's API in this
process, the Redis hashes byte for byte against a push from this process over the same data. The
tasks must have run in the workers' executors (their logs in the workers' folders), not in the driver.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from featurestore_spark import FeatureStore
from featurestore_spark.demo_data import DEFAULT_START
from featurestore_spark.session import DELTA_PACKAGES
from tests.redis_servers import PORT_BASE, redis_server
from tests.services import example_repo, script_service
from tests.services import hashes as redis_hashes

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLUSTER = ROOT / ".cache" / "cluster"
PORT = int(os.environ.get("FSSPARK_CLUSTER_PORT", "7077"))
MASTER = f"spark://127.0.0.1:{PORT}"
REDIS = PORT_BASE + 140


@pytest.fixture(scope="module")
def cluster():
    """The cluster of ``scripts/cluster.sh``, started for this module unless it was running already."""
    with script_service("cluster.sh", "master: running"):
        yield MASTER


def submit(job: str, *args: str, env: dict, master: str = MASTER, timeout: int = 600,
           jars: bool = True, wait: bool = True):
    """``spark-submit`` of ``jobs/<job>`` to ``master``, with the cached Delta jars (unless ``jars`` is
    False) and small shuffles: the finished process, or the running one when ``wait`` is False."""
    jars = ",".join(str(p) for p in sorted((ROOT / ".cache" / "jars").glob("*.jar"))) if jars else ""
    conf = {"spark.sql.shuffle.partitions": "4", "spark.executor.memory": "1g", "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false", "spark.databricks.delta.snapshotPartitions": "2"}
    cmd = [str(BIN / "spark-submit"), "--master", master, *(["--jars", jars] if jars else []),
           *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")], str(ROOT / "jobs" / job), *args]
    if not wait:  # output to files (``proc.outputs``): a pipe nobody reads while the job runs could fill and block it
        outputs = (tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+"))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=outputs[0], stderr=outputs[1], text=True)
        proc.outputs = outputs  # type: ignore[attr-defined]
        return proc
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def repo_copy(folder: Path, db: int, view_path: Path | None = None) -> Path:
    return example_repo(folder, REDIS, db, view_path)


def hashes(db: int) -> dict:
    return redis_hashes(REDIS, db)


def newest_app(since: float) -> str | None:
    """The id of the newest application the workers ran executors for since ``since`` (epoch seconds)."""
    apps = [d for w in ("worker1", "worker2") for d in (CLUSTER / w).glob("app-*") if d.stat().st_mtime >= since]
    return max(apps, key=lambda d: d.name).name if apps else None


def kill_an_executor_when(proc: subprocess.Popen, since: float, ready, timeout: float = 300) -> int:
    """Waits until the job's executors run tasks and ``ready()`` holds, then SIGKILLs one executor JVM
    (the process a worker launched for this application) and returns its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        app = newest_app(since)
        running = app and any("Running task" in log.read_text() for w in ("worker1", "worker2")
                              for log in (CLUSTER / w / app).glob("*/stderr"))
        if running and ready():
            for p in psutil.process_iter(["cmdline"]):
                cmd = p.info["cmdline"] or []
                if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in cmd and app in cmd:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:  # it ended on its own meanwhile: try another
                        continue
                    return p.pid
        time.sleep(0.2)
    raise AssertionError(f"the job ended or never ran tasks before an executor could be killed: {proc.poll()}")


def executor_tasks(app_id: str) -> dict[str, int]:
    """Tasks each worker's executors finished for ``app_id``, from their logs."""
    done = {}
    for worker in ("worker1", "worker2"):
        logs = list((CLUSTER / worker / app_id).glob("*/stderr"))
        done[worker] = sum(log.read_text().count("Finished task") for log in logs)
    return done


def test_every_job_on_the_cluster_equals_local_mode(spark, cluster, tmp_path, monkeypatch):
    """The demo, the training-set request, its reproduction, materialize, materialize-incremental and
    an available-now stream, each a spark-submit to the cluster (the demo's data feeds the others),
    against the same calls in this process."""
    data = tmp_path / "data"
    monkeypatch.setenv("FSSPARK_DATA_DIR", str(data))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_DATA_DIR": str(data), "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    start, end = (DEFAULT_START - timedelta(days=1)).isoformat(), (DEFAULT_START + timedelta(days=31)).isoformat()
    request = tmp_path / "request.yaml"
    request.write_text(f"name: ride_ranking\nentities:\n  delta: {data}/entities\nfeatures: ride_ranking\n"
                       f"output:\n  path: {tmp_path}/training_set\n")

    def run(job: str, *args: str, kill_when=None, both_workers: bool = False) -> str:
        """Submits the job; with ``kill_when``, one of its executors is killed once that holds, mid-job."""
        if kill_when is None:
            done = submit(job, *args, "--profile", "cluster", env=env)
        else:
            since = time.time() - 1
            proc = submit(job, *args, "--profile", "cluster", env=env, wait=False)
            killed = kill_an_executor_when(proc, since, kill_when)
            proc.wait(timeout=600)
            for f in proc.outputs:
                f.seek(0)
            out, err = (f.read() for f in proc.outputs)
            done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
            assert "Lost executor" in out + err, err[-3000:]  # the driver saw it go and rescheduled its tasks
        assert done.returncode == 0, done.stderr[-3000:]
        app_id = re.search(r"app-\d{14}-\d{4}", done.stdout + done.stderr).group(0)
        tasks = executor_tasks(app_id)
        # The workers' executors ran its tasks (for the demo, the largest job, on both workers: a small job
        # may finish on the first executor to register).
        assert (tasks["worker1"] > 0 and tasks["worker2"] > 0) if both_workers else sum(tasks.values()) > 0, tasks
        return done.stdout

    with redis_server(REDIS, tmp_path / "redis"):
        demo = run("demo.py", "--rows", "2000", "--entities", "100", "--out", str(data),
                   "--repo", str(repo_copy(tmp_path / "repo_demo", db=1)), both_workers=True)
        assert "[4/4] read back through Feast" in demo
        inbox, target = tmp_path / "inbox", tmp_path / "stream_target"
        rows = spark.read.format("delta").load(str(data / "driver_hourly_stats"))
        rows.write.parquet(str(inbox))
        rows.limit(0).write.format("delta").save(str(target))

        on_cluster = repo_copy(tmp_path / "repo_cluster", db=3)
        catalog = str(tmp_path / "catalog")
        # Two jobs lose an executor once their first tasks run (killed by pid): Spark reruns the tasks
        # elsewhere and the results below must still equal local mode's, the push's byte for byte.
        run("generate_training_set.py", "--request", str(request), "--repo", str(on_cluster), "--catalog", catalog,
            kill_when=lambda: True)
        run("generate_training_set.py", "--reproduce", f"{tmp_path}/training_set", "--out", f"{tmp_path}/again",
            "--repo", str(on_cluster), "--catalog", catalog)
        run("materialize.py", "--start", start, "--end", end, "--repo", str(on_cluster), kill_when=lambda: True)
        incremental = repo_copy(tmp_path / "repo_cluster_incremental", db=5)
        run("materialize.py", "--incremental", "--end", end, "--repo", str(incremental), "--state-path",
            str(tmp_path / "marks_cluster"))
        streamed = repo_copy(tmp_path / "repo_cluster_stream", db=7, view_path=target)
        run("ingest_stream.py", "--view", "driver_hourly_stats", "--from", str(inbox), "--format", "parquet",
            "--checkpoint", str(tmp_path / "checkpoint"), "--available-now", "--offline-only", "--repo", str(streamed))

        local = FeatureStore(repo_copy(tmp_path / "repo_local", db=4), spark=spark, catalog=str(tmp_path / "catalog_local"))
        expected = local.get_historical_features(str(data / "entities"), "ride_ranking")
        for table in (data / "training_sets" / "ride_ranking", tmp_path / "training_set", tmp_path / "again"):
            built = spark.read.format("delta").load(str(table))
            assert built.columns == expected.columns
            assert built.exceptAll(expected).count() == 0 and expected.exceptAll(built).count() == 0
        assert [b["output"]["location"] for b in FeatureStore(on_cluster, spark=spark, catalog=catalog).training_sets()] \
            == [f"{tmp_path}/again", f"{tmp_path}/training_set"]
        local.materialize(DEFAULT_START - timedelta(days=1), DEFAULT_START + timedelta(days=31))
        assert len(hashes(3)) > 0 and hashes(3) == hashes(4) == hashes(1)  # materialize.py, this process, the demo
        FeatureStore(repo_copy(tmp_path / "repo_local_incremental", db=6), spark=spark,
                     state_path=str(tmp_path / "marks_local")).materialize_incremental(DEFAULT_START + timedelta(days=31))
        assert hashes(5) == hashes(6)
        assert spark.read.format("delta").load(str(target)).exceptAll(rows).count() == 0
        assert spark.read.format("delta").load(str(target)).count() == rows.count()

def test_a_master_that_does_not_answer_is_named_within_seconds(tmp_path):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    started = time.monotonic()
    job = submit("materialize.py", "--start", "2026-01-01", "--end", "2026-01-02", "--profile", "cluster", env=env,
                 master="spark://127.0.0.1:1", timeout=120)
    assert time.monotonic() - started < 60
    assert job.returncode == 2, job.stderr[-2000:]
    assert "the Spark master spark://127.0.0.1:1 does not answer" in job.stdout + job.stderr
    assert "Traceback" not in job.stdout + job.stderr


def test_missing_delta_jars_are_named_with_the_fix(tmp_path):
    """spark-submit without the Delta jars: Spark only warns and fails later deep in a trace; the job
    stops at once (exit 2) and says which packages to pass."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    job = submit("generate_demo_data.py", "--rows", "10", "--out", str(tmp_path / "data"), "--profile", "cluster",
                 env=env, master="local[1]", jars=False, timeout=300)
    assert job.returncode == 2, job.stderr[-2000:]
    assert "Delta Lake's classes are not on the Spark driver's classpath" in job.stdout + job.stderr
    assert f"--packages {','.join(DELTA_PACKAGES)}" in job.stdout + job.stderr
    assert not (tmp_path / "data").exists()
