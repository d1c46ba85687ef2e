"""The README's quickstart: the demo job under a real spark-submit, and the CLI, end to end. The example
repo runs as a copy pointed at this run's Redis, never at one the tests did not start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.services import example_repo

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))


def repo_on_test_redis(folder: Path, db: int) -> Path:
    redis.Redis(port=PORT, db=db).flushdb()
    return example_repo(folder, PORT, db)


def test_demo_job_under_spark_submit(spark, tmp_path):
    jars = ",".join(str(p) for p in sorted((ROOT / ".cache" / "jars").glob("*.jar")))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    run = subprocess.run(
        [str(BIN / "spark-submit"), "--master", "local[2]", "--jars", jars, "--conf", "spark.ui.enabled=false",
         "--conf", "spark.ui.showConsoleProgress=false", str(ROOT / "jobs" / "demo.py"), "--rows", "3000",
         "--entities", "200", "--out", str(tmp_path / "data"), "--repo", str(repo_on_test_redis(tmp_path / "repo", 14))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[2/4] training set: 3000 rows, 13 columns" in run.stdout
    assert "[4/4] read back through Feast: {" in run.stdout and "conv_rate" in run.stdout
    assert redis.Redis(port=PORT, db=14).dbsize() > 0  # the push went to this run's Redis
    # The training set the job wrote is what the engine returns in this process too.
    os.environ["FSSPARK_DATA_DIR"] = str(tmp_path / "data")
    try:
        from featurestore_spark import FeatureStore

        store = FeatureStore(repo_path=ROOT / "feature_repo", spark=spark)
        again = store.get_historical_features(str(tmp_path / "data" / "entities"), "ride_ranking")
        written = spark.read.format("delta").load(str(tmp_path / "data" / "training_sets" / "ride_ranking"))
        assert written.exceptAll(again).count() == 0 and again.exceptAll(written).count() == 0
    finally:
        del os.environ["FSSPARK_DATA_DIR"]


def test_cli_explain_and_unknown_feature(tmp_path):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_DATA_DIR": str(tmp_path)}
    run = subprocess.run(
        [str(BIN / "fsspark"), "explain", "--entities", "SELECT 1001L AS driver_id, TIMESTAMP'2026-01-02' AS "
         "event_timestamp", "--features", "driver_hourly_stats:conv_rat"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2
    assert "fsspark: error: feature view 'driver_hourly_stats' has no feature 'conv_rat'" in run.stderr


def test_readme_quickstart_code_runs(spark, tmp_path):
    """Every Python block of the README's Quickstart, run as written (smaller data, a temp folder)."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S)]
    assert len(blocks) == 4
    code = "\n".join(__import__("textwrap").dedent(b) for b in blocks)
    repo = repo_on_test_redis(tmp_path / "repo", 15)
    code = code.replace("/tmp/fsdata", str(tmp_path)).replace("rows=100_000", "rows=2_000")
    assert 'repo_path="feature_repo"' in code
    code = code.replace('repo_path="feature_repo"', f'repo_path="{repo}"')
    namespace: dict = {}
    old = os.environ.get("FSSPARK_DATA_DIR")
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        exec(compile(code, "README.md quickstart", "exec"), namespace)  # noqa: S102 - the README's own code
    finally:
        os.chdir(cwd)
        os.environ.pop("FSSPARK_DATA_DIR", None) if old is None else os.environ.update(FSSPARK_DATA_DIR=old)
    assert namespace["df"].columns == ["driver_id", "customer_id", "event_timestamp", "label", "conv_rate", "segment"]
    assert spark.read.format("delta").load(str(tmp_path / "training_set")).count() == 2_000
    assert {r.view for r in namespace["reports"]} == {"driver_hourly_stats", "customer_profile", "driver_customer_stats"}
    assert redis.Redis(port=PORT, db=15).dbsize() == sum(r.written for r in namespace["reports"])
