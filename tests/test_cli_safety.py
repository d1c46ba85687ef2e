"""Nothing lost, nothing silent: the CLI refuses to overwrite what it should not, reports Spark's and
Delta's failures in one line with an exit code, checks its input before Spark starts, and stops a
stream cleanly on SIGINT or SIGTERM.

In-process runs (``cli.main`` on the shared session) check results and the one line on stderr;
subprocess runs check what only a fresh process shows: how long before it answers, that no Spark
started, and a real signal.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from featurestore_spark import cli_errors
from featurestore_spark.cli import main as cli
from featurestore_spark.errors import ConcurrentWriteError
from featurestore_spark.training.build import create_training_set
from tests.test_incremental import DEFS, SCHEMA, rows
from tests.test_training_set import world  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
DB = 13
#: What a JVM prints first on stderr: its absence says no Spark started.
SPARK_STARTED = ("log4j", "NativeCodeLoader", "Setting default log level")


def env() -> dict:
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_SPARK_MASTER": "local[2]",
            "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable}


def make_repo(spark, root: Path) -> dict:
    """A Feast repo of one view ``rides`` over a small Delta table, Delta entity rows, and a bronze table."""
    repo, data = root / "repo", root / "data"
    repo.mkdir()
    (repo / "defs.py").write_text(DEFS.replace("{data}", str(data)))
    (repo / "feature_store.yaml").write_text(
        f"project: safety\nregistry: {repo}/registry.db\nprovider: local\nonline_store:\n  type: redis\n"
        f"  connection_string: \"127.0.0.1:{PORT},db={DB}\"\nentity_key_serialization_version: 3\n"
    )
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    spark.createDataFrame(rows([(k, timedelta(hours=h)) for k in range(1, 9) for h in (0, 2)], base),
                          SCHEMA).write.format("delta").save(str(data / "rides"))
    entities = pd.DataFrame({"driver_id": list(range(1, 11)), "event_timestamp": [base + timedelta(hours=1)] * 10})
    spark.createDataFrame(entities, "driver_id long, event_timestamp timestamp").write.format("delta").save(
        str(root / "entities"))
    bronze = rows([(k, timedelta(hours=3, minutes=k)) for k in range(1, 16)], base)
    spark.createDataFrame(bronze, SCHEMA).write.format("delta").save(str(root / "bronze"))
    return {"repo": str(repo), "data": data, "entities": str(root / "entities"), "bronze": bronze,
            "root": root}


@pytest.fixture(scope="module")
def setup(spark, tmp_path_factory):
    return make_repo(spark, tmp_path_factory.mktemp("cli_safety"))


def error_line(capsys) -> str:
    """The one line the CLI printed on stderr (and nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def historical(setup, out: str, *extra: str, features: str = "rides:rate,rides:trips") -> int:
    return cli(["--repo", setup["repo"], "historical", "--entities", setup["entities"], "--features", features,
                "--out", out, *extra])


def version(spark, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


# --- fsspark historical --out: modes -------------------------------------------------------------


def test_historical_modes_refuse_an_existing_table_and_a_schema_change(spark, setup, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert historical(setup, out) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (Delta version 0, --mode error) in ")
    first = spark.read.format("delta").load(out)
    assert first.columns == ["driver_id", "event_timestamp", "rate", "trips"] and first.count() == 10

    # The default, error: an existing table (a feature source, another training set) is left alone.
    assert historical(setup, out) == 2
    assert error_line(capsys) == (f"fsspark: error: output '{out}' already exists; set --mode to overwrite (earlier "
                                  "versions stay readable by time travel) or append, or choose another output")
    assert historical(setup, setup["data"].joinpath("rides").as_posix()) == 2
    assert "already exists" in error_line(capsys) and version(spark, str(setup["data"] / "rides")) == 0

    # append with other columns: one line naming the column; nothing written.
    assert historical(setup, out, "--mode", "append", features="rides:rate") == 2
    assert error_line(capsys) == (f"fsspark: error: --mode append: the rows do not fit '{out}': the table's column "
                                  "trips bigint is missing; use overwrite or another output")
    assert version(spark, out) == 0

    # overwrite replaces (the earlier version stays readable); append then adds the same columns.
    assert historical(setup, out, "--mode", "overwrite", features="rides:rate") == 0
    assert spark.read.format("delta").load(out).columns == ["driver_id", "event_timestamp", "rate"]
    assert spark.read.format("delta").option("versionAsOf", 0).load(out).columns == first.columns
    capsys.readouterr()
    assert historical(setup, out, "--mode", "append", features="rides:rate") == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (Delta version 2, --mode append) in ")
    both = spark.read.format("delta").load(out)
    assert both.count() == 20 and both.distinct().count() == 10


def test_historical_refuses_a_folder_that_is_not_delta(spark, setup, tmp_path, capsys):
    parquet = tmp_path / "parquet"
    spark.range(3).write.parquet(str(parquet))
    before = sorted(p.name for p in parquet.iterdir())
    for mode in ("error", "overwrite", "append"):
        assert historical(setup, str(parquet), "--mode", mode) == 2
        line = error_line(capsys)
        assert line.startswith(f"fsspark: error: output '{parquet}' exists and is not a Delta table (it holds "), line
        assert line.endswith("choose another output, or move them away first")
    assert sorted(p.name for p in parquet.iterdir()) == before

    empty = tmp_path / "empty"
    empty.mkdir()
    assert historical(setup, str(empty)) == 0  # an empty folder is no one's data
    assert spark.read.format("delta").load(str(empty)).count() == 10


# --- Spark's errors: one line, exit 2; --debug shows the traceback -------------------------------


def test_spark_errors_are_one_line_and_debug_shows_the_traceback(setup, tmp_path, capsys):
    out = str(tmp_path / "never")
    bad_sql = ["--repo", setup["repo"], "historical", "--entities", "SELECT driver_id FROM (SELECT 1",
               "--features", "rides:rate", "--out", out]
    assert cli(bad_sql) == 2
    line = error_line(capsys)
    assert line.startswith("fsspark: error: Spark cannot parse the SQL: [PARSE_SYNTAX_ERROR] Syntax error at or "
                           "near end of input") and line.endswith("; fix the query"), line

    assert cli(["--debug", *bad_sql]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "ParseException" in err
    assert err.strip().splitlines()[-1] == line

    assert cli(["--repo", setup["repo"], "historical", "--entities", "SELECT * FROM fsspark_no_such_table",
                "--features", "rides:rate", "--out", out]) == 2
    line = error_line(capsys)
    assert line.startswith("fsspark: error: Spark cannot run this: [TABLE_OR_VIEW_NOT_FOUND]"), line
    assert not os.path.exists(out)


def test_a_missing_path_does_not_exist_and_a_folder_is_not_delta(setup, tmp_path, capsys):
    base = ["--repo", setup["repo"], "historical", "--features", "rides:rate", "--out", str(tmp_path / "o")]
    assert cli([*base, "--entities", str(tmp_path / "nothing_here")]) == 2
    assert error_line(capsys) == f"fsspark: error: entity_df: '{tmp_path / 'nothing_here'}' does not exist; check the path"
    (tmp_path / "plain").mkdir()
    assert cli([*base, "--entities", str(tmp_path / "plain")]) == 2
    assert error_line(capsys).startswith(f"fsspark: error: entity_df: '{tmp_path / 'plain'}' is not a Delta table")


# --- a lost race: exit 5 -------------------------------------------------------------------------


def test_two_builds_creating_one_output_the_loser_gets_exit_5(spark, world, tmp_path, capsys):  # noqa: F811
    """Two builds of the same new output: the loser's write starts before the winner's commit and commits
    after it (its entity rows wait, in the write's job, for the winner to finish). It gets
    ConcurrentWriteError (exit 5, one line) and leaves nothing of its own."""
    gate, release, claim = tmp_path / "writing", tmp_path / "release", tmp_path / "claimed"

    def wait_for_the_winner(_: object) -> bool:  # runs in a Python worker: files are what it shares with us
        import os
        import time

        if not os.path.exists(gate):
            return True
        try:  # the loser's write has begun: one task (the first to get here) holds it until the winner commits;
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL))  # the others go on, so the winner keeps a task slot
        except FileExistsError:
            return True
        deadline = time.monotonic() + 600  # only against a hang: the winner releases it once it has committed
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    spark.udf.register("fsspark_test_wait", wait_for_the_winner, "boolean")
    # One file, so one task waits: the winner's jobs get the session's other task slot.
    one_file = str(tmp_path / "entities_one_file")
    spark.read.format("delta").load(str(world["tmp"] / "entities")).coalesce(1).write.format("delta").save(one_file)
    out = str(world["tmp"] / "raced")
    entities = f"SELECT * FROM delta.`{one_file}` WHERE fsspark_test_wait(driver_id)"
    loser_request = {**world["request"], "entities": {"sql": entities}, "output": {"path": out}}
    lost: list[Exception] = []

    def loser() -> None:
        def progress(line: str) -> None:
            if line.startswith("[4/5]"):
                gate.touch()
        try:
            create_training_set(spark, world["repo"], loser_request, catalog=world["catalog"], progress=progress)
        except Exception as exc:  # checked below
            lost.append(exc)

    thread = threading.Thread(target=loser)
    thread.start()
    try:
        deadline = time.monotonic() + 300
        while not gate.exists():
            assert thread.is_alive() and time.monotonic() < deadline, lost
            time.sleep(0.05)
        won = create_training_set(spark, world["repo"], {**world["request"], "output": {"path": out}},
                                  catalog=world["catalog"])
    finally:
        release.touch()
        thread.join()
    assert len(lost) == 1 and isinstance(lost[0], ConcurrentWriteError), lost
    assert (won.version, won.rows_out) == (0, 150)
    assert version(spark, out) == 0 and spark.read.format("delta").load(out).count() == 150  # the winner's alone
    assert cli_errors.report(lost[0], debug=False) == 5
    assert error_line(capsys) == (
        f"fsspark: error: another writer created '{out}' while this one was writing (ProtocolChangedException); "
        "nothing of this write was committed. Run it again with mode overwrite or append to replace or add to "
        "it, or choose another output")
    # Delta's own exception, met elsewhere (a watermark, the catalog), is a lost race too.
    code, line = cli_errors.describe(lost[0].__cause__)
    assert code == 5 and line.startswith("error: another writer committed to a Delta table this command writes "
                                         "(ProtocolChangedException: [DELTA_PROTOCOL_CHANGED]"), line
    assert line.endswith("the conflicting commit did not happen: run the same command again")


# --- checked before Spark starts ------------------------------------------------------------------


def run_fast(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    run = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    run.seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    assert not any(s in run.stderr for s in SPARK_STARTED), run.stderr  # no JVM was started
    return run


def test_bad_arguments_fail_before_spark_starts(tmp_path):
    backwards = run_fast([str(BIN / "fsspark"), "materialize", "--start", "2026-02-01", "--end", "2025-12-01"], tmp_path)
    assert backwards.returncode == 2 and backwards.seconds < 10  # type: ignore[attr-defined]
    assert backwards.stderr.strip().splitlines()[-1] == (
        "fsspark: error: --start 2026-02-01T00:00:00+00:00 is not before --end 2025-12-01T00:00:00+00:00; "
        "materialize pushes the rows of [start, end]")

    not_a_time = run_fast([str(BIN / "fsspark"), "materialize-incremental", "--end", "2026-02-30"], tmp_path)
    assert not_a_time.returncode == 2 and "argument --end: '2026-02-30' is not an ISO time" in not_a_time.stderr
    replicas = run_fast([str(BIN / "fsspark"), "ingest-stream", "--view", "v", "--from", "f", "--checkpoint", "c",
                         "--min-replicas", "-1"], tmp_path)
    assert replicas.returncode == 2 and "argument --min-replicas: -1 is less than 0" in replicas.stderr
    every = run_fast([str(BIN / "fsspark"), "ingest-stream", "--view", "v", "--from", "f", "--checkpoint", "c",
                      "--every", "soon"], tmp_path)
    assert every.returncode == 2 and "argument --every: 'soon' is not an interval" in every.stderr

    for flag, value, message in (("--rows", "-5", "-5 is less than 1"), ("--entities", "0", "0 is less than 1")):
        demo = run_fast([sys.executable, str(ROOT / "jobs" / "demo.py"), flag, value, "--out", str(tmp_path / "d")],
                        tmp_path)
        assert demo.returncode == 2 and f"argument {flag}: {message}" in demo.stderr
        assert not (tmp_path / "d").exists()


def test_a_bad_request_or_repo_fails_before_spark_starts(setup, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: x\nentities: {delta: /e\n")
    broken = run_fast([str(BIN / "fsspark"), "training-set", str(tmp_path / "broken.yaml")], tmp_path)
    assert broken.returncode == 2 and broken.seconds < 10  # type: ignore[attr-defined]
    assert broken.stderr.startswith(f"fsspark: error: request {tmp_path / 'broken.yaml'}: not valid YAML: ")

    (tmp_path / "bad.yaml").write_text("name: x\nentities: {delta: /e}\nfeatures: a:b\noutput: {path: /o, mode: x}\n")
    bad = run_fast([str(BIN / "fsspark"), "--repo", setup["repo"], "training-set", str(tmp_path / "bad.yaml")],
                   tmp_path)
    assert bad.returncode == 2 and bad.seconds < 10  # type: ignore[attr-defined]
    assert "output.mode: Input should be 'error', 'overwrite' or 'append' (got 'x')" in bad.stderr

    no_repo = run_fast([str(BIN / "fsspark"), "--repo", str(tmp_path / "nowhere"), "historical", "--entities", "e",
                        "--features", "v:f", "--out", "o"], tmp_path)
    assert no_repo.returncode == 2
    assert no_repo.stderr.strip().splitlines()[-1] == (
        f"fsspark: error: no feature_store.yaml in {tmp_path / 'nowhere'}; pass repo_path= (or --repo) the folder "
        "of a Feast repo")


# --- a stream stopped by a signal ----------------------------------------------------------------


def start_stream(setup, checkpoint: Path) -> subprocess.Popen:
    """``fsspark ingest-stream`` of the bronze table into ``rides``, a batch a second, in its own process
    group (as a terminal's foreground job: Ctrl-C signals the whole group)."""
    args = [str(BIN / "fsspark"), "--repo", setup["repo"], "ingest-stream", "--view", "rides", "--from",
            str(setup["root"] / "bronze"), "--checkpoint", str(checkpoint), "--every", "1 second"]
    # Bytes, not text: text mode would turn the progress bars' carriage returns into line breaks.
    return subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.2)


def printed_lines(output: str) -> list[str]:
    """The lines a terminal would keep: Spark's progress bars (redrawn after a carriage return) left out."""
    return re.sub(r"\r[^\r\n]*", "", output).splitlines()


def table_rows(spark, setup) -> list[tuple]:
    pdf = spark.read.format("delta").load(str(setup["data"] / "rides")).toPandas()
    return sorted(pdf[["driver_id", "rate", "trips"]].itertuples(index=False, name=None))


def expected_rows(setup, *frames: pd.DataFrame) -> list[tuple]:
    pdf = pd.concat(frames)
    return sorted(pdf[["driver_id", "rate", "trips"]].itertuples(index=False, name=None))


@pytest.fixture()
def stream_setup(spark, tmp_path):
    return make_repo(spark, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_stream_after_its_batch(spark, stream_setup, tmp_path, sig):
    """SIGTERM (to the process) or SIGINT (to its group, as Ctrl-C): the query stops after its batch,
    one line says so, exit 0; the batch is in the table once, and recorded in the checkpoint."""
    setup, checkpoint = stream_setup, tmp_path / "checkpoint"
    before = table_rows(spark, setup)
    proc = start_stream(setup, checkpoint)
    try:
        wait_for(checkpoint / "commits" / "0", proc)
        os.kill(proc.pid, sig) if sig == signal.SIGTERM else os.killpg(proc.pid, sig)
        output = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert len(printed_lines(output)) < 20, output
    assert "Traceback" not in output and "Exception" not in output and "Error" not in output, output
    assert f"rides: stream stopped ({sig.name}) after 15 rows in 1 batch(es)" in output, output
    assert table_rows(spark, setup) == sorted(before + expected_rows(setup, setup["bronze"]))
    assert sorted(p.name for p in (checkpoint / "commits").iterdir() if not p.name.startswith(".")) == ["0"]


def test_a_second_signal_stops_the_stream_at_once_and_the_batch_runs_again(spark, stream_setup, tmp_path, capsys):
    """Two Ctrl-C while the first batch runs: the query stops at once (exit 130), quietly; the same
    command then takes the batch again, and the table has its rows once."""
    setup, checkpoint = stream_setup, tmp_path / "checkpoint"
    before = table_rows(spark, setup)
    proc = start_stream(setup, checkpoint)
    try:
        wait_for(checkpoint / "offsets" / "0", proc)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)  # two signals pending at once are one: the first is counted before the second comes
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-3000:]
    assert len(printed_lines(output)) < 20, output
    assert "Traceback" not in output and "Exception" not in output and "Error" not in output, output
    assert "rides: stream stopped at once (SIGINT then SIGINT)" in output, output

    args = ["--repo", setup["repo"], "ingest-stream", "--view", "rides", "--from", str(setup["root"] / "bronze"),
            "--checkpoint", str(checkpoint), "--available-now"]
    assert cli(args) == 0
    capsys.readouterr()
    assert table_rows(spark, setup) == sorted(before + expected_rows(setup, setup["bronze"]))


def test_a_driver_jvm_that_dies_is_named_not_taken_for_bad_input(tmp_path):
    """The driver's JVM killed under a command (as the kernel's OOM killer would): one line that says so,
    exit 1, not a refused connection read as an unreachable store (exit 2)."""
    script = tmp_path / "die.py"
    script.write_text(
        "import os, signal, sys\n"
        "from featurestore_spark import build_session, cli_errors\n"
        "spark = build_session('local')\n"
        "os.kill(spark.sparkContext._gateway.proc.pid, signal.SIGKILL)\n"
        "spark.sparkContext._gateway.proc.wait()\n"
        "sys.exit(cli_errors.run(lambda: spark.range(5).count(), debug=False, prog='fsspark'))\n")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "FSSPARK_SPARK_MASTER": "local[1]"}
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == cli_errors.UNEXPECTED, run.stderr[-2000:]
    assert "fsspark: error: the Spark driver's JVM stopped answering (killed, or out of memory" in run.stderr
