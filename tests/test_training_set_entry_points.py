"""Training sets through every way in: a real spark-submit of the job, the CLI, and the notebook, executed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from featurestore_spark import FeatureStore
from featurestore_spark.demo_data import write_demo_data
from featurestore_spark.training import catalog

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("ts_entry")
    write_demo_data(spark, str(root), rows=3000, entity_rows_count=800, n_entities=150, days=10)
    return root


def env_for(data: Path) -> dict:
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_DATA_DIR": str(data),
            "FSSPARK_CATALOG": str(data / "catalog"), "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def same_rows(a, b) -> bool:
    return a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_job_under_spark_submit_then_cli_reproduce_and_catalog(spark, data, monkeypatch):
    jars = ",".join(str(p) for p in sorted((ROOT / ".cache" / "jars").glob("*.jar")))
    env = env_for(data)
    job = subprocess.run(
        [str(BIN / "spark-submit"), "--master", "local[2]", "--jars", jars, "--conf", "spark.ui.enabled=false",
         "--conf", "spark.ui.showConsoleProgress=false", str(ROOT / "jobs" / "generate_training_set.py"),
         "--request", str(ROOT / "requests" / "ride_ranking.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    out = str(data / "training_sets" / "ride_ranking")
    assert job.stdout.strip().splitlines()[-1].startswith("training set ride_ranking: 800 rows in ")
    assert job.stdout.strip().endswith(f"-> {out} (Delta version 0)")
    # spark-submit merges the Python driver's stderr (the progress lines) into its stdout.
    for step in ("[1/5] check the request", "[3/5] plan the join", "[5/5] record the manifest"):
        assert step in job.stdout

    # The reference: the engine's own API in this process, over the same data.
    monkeypatch.setenv("FSSPARK_DATA_DIR", str(data))
    store = FeatureStore(repo_path=ROOT / "feature_repo", spark=spark, catalog=str(data / "catalog"))
    expected = store.get_historical_features(str(data / "entities"), "ride_ranking")
    written = spark.read.format("delta").load(out)
    assert written.columns == expected.columns and same_rows(written, expected)

    # Sources change; the CLI rebuilds the original rows from the table's manifest.
    spark.read.format("delta").load(str(data / "driver_hourly_stats")).limit(50) \
        .write.format("delta").mode("overwrite").save(str(data / "driver_hourly_stats"))
    again = str(data / "again")
    cli = subprocess.run([str(BIN / "fsspark"), "training-set", "--reproduce", out, "--out", again],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert cli.stdout.strip().startswith("training set ride_ranking: 800 rows in ")
    assert "[4/5] join and write" in cli.stderr
    assert same_rows(spark.read.format("delta").load(again), written)

    builds = catalog.builds(spark, str(data / "catalog"), "ride_ranking")
    assert [b["output"]["location"] for b in builds] == [again, out]
    listing = catalog.format_list(builds).splitlines()
    assert listing[0].split() == ["NAME", "VERSION", "BUILT", "(UTC)", "ROWS", "FEATURES", "OUTPUT"]
    assert listing[1].split()[-3:] == ["800", str(len(store.repo.services["ride_ranking"].features)), again]
    show = subprocess.run([str(BIN / "fsspark"), "training-sets", "show", "ride_ranking"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr[-3000:]
    assert f"output:       {again} (Delta version 0)" in show.stdout
    assert f"reproduces:   {out} version 0 (build {builds[1]['build_id']})" in show.stdout
    assert f"driver_hourly_stats      {data}/driver_hourly_stats @ version 0" in show.stdout
    assert "earlier builds (1):" in show.stdout


def test_cli_rejects_a_bad_request_with_its_location(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\nentities: {delta: /e}\nfeatures: a:b\noutput: {path: /o, mode: replace}\n")
    run = subprocess.run([str(BIN / "fsspark"), "training-set", str(tmp_path / "bad.yaml")],
                         cwd=ROOT, env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "fsspark: error: request" in run.stderr
    assert "output.mode: Input should be 'error', 'overwrite' or 'append' (got 'replace')" in run.stderr


def test_cli_refuses_reproduce_options_with_a_request(tmp_path, capsys):
    from featurestore_spark.cli import main

    for extra in (["--out", str(tmp_path / "o")], ["--version", "3"]):
        with pytest.raises(SystemExit) as info:
            main(["training-set", str(tmp_path / "r.yaml"), *extra])
        assert info.value.code == 2
        assert "--out and --version go with --reproduce; a request names its output" in capsys.readouterr().err


def test_notebook_runs_and_builds_the_training_set(spark, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "training_set.ipynb", as_version=4)
    monkeypatch.setenv("FSSPARK_DATA_DIR", str(tmp_path))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "training set ride_ranking_notebook: 2,000 rows in " in text
    assert "identical rows: True" in text
    manifest = json.loads(next((tmp_path / "training_sets" / "ride_ranking_notebook" / "_fsspark").glob("*.json")).read_text())
    written = spark.read.format("delta").load(str(tmp_path / "training_sets" / "ride_ranking_notebook"))
    assert manifest["rows_out"] == written.count() == 2000
    assert manifest["null_counts"]["conv_rate"] == written.where("conv_rate IS NULL").count()
