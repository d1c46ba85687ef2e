"""Incremental materialization: rows appended late, with old event timestamps, still reach Redis.

Two copies of one view: ``rides`` has the Delta change data feed, ``rides_nocdf`` has not (the
engine then pushes the whole ttl window again). Redis is read back through Feast and compared
with a pandas oracle over the rows as written.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import feast
import pandas as pd
import pytest

from featurestore_spark import FeatureStore
from featurestore_spark.cli import main as cli
from featurestore_spark.errors import UnknownFeatureViewError
from featurestore_spark.freshness import freshness
from tests.helpers import T0, apply_feast_repo, vacuum_everything

PORT = int(os.environ.get("FSSPARK_REDIS_PORT", "6379"))
DB = 6
E1, E2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
SCHEMA = "driver_id long, event_timestamp timestamp, created timestamp, rate double, trips long"

DEFS = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64
from feast.value_type import ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)


def view(name):
    return FeatureView(
        name=name, entities=[driver], ttl=timedelta(days=365),
        schema=[Field(name="driver_id", dtype=Int64), Field(name="rate", dtype=Float64),
                Field(name="trips", dtype=Int64)],
        source=SparkSource(name=name + "_source", path="{data}/" + name, table_format=DeltaFormat(),
                           timestamp_field="event_timestamp", created_timestamp_column="created"),
    )


rides = view("rides")
rides_nocdf = view("rides_nocdf")
'''


def rows(spec: list[tuple[int, timedelta]], base=T0) -> pd.DataFrame:
    """Rows (driver, event time base + dt); values derived from both, so every row is distinguishable."""
    return pd.DataFrame({
        "driver_id": [k for k, _ in spec],
        "event_timestamp": [base + dt for _, dt in spec],
        "created": [base + dt + timedelta(minutes=1) for _, dt in spec],
        "rate": [k + dt.total_seconds() / 1e6 for k, dt in spec],
        "trips": [int(dt.total_seconds()) // 60 for _, dt in spec],
    })


def append(spark, pdf: pd.DataFrame, path: str, cdf: bool) -> None:
    spark.createDataFrame(pdf, SCHEMA).write.format("delta").mode("append").option(
        "delta.enableChangeDataFeed", str(cdf).lower()).save(path)


def oracle(pdf: pd.DataFrame, end) -> pd.DataFrame:
    """Latest row per driver with event time <= end (pandas sort; created breaks ties)."""
    pdf = pdf[pdf["event_timestamp"] <= end]
    return pdf.sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1).set_index("driver_id")


def assert_served(fs: feast.FeatureStore, view: str, expected: pd.DataFrame) -> None:
    ids = list(range(1, 51))
    got = fs.get_online_features(features=[f"{view}:rate", f"{view}:trips"],
                                 entity_rows=[{"driver_id": i} for i in ids]).to_dict()
    for n, i in enumerate(ids):
        want = (expected.loc[i, "rate"], expected.loc[i, "trips"]) if i in expected.index else (None, None)
        assert (got["rate"][n], got["trips"][n]) == pytest.approx(want) if want[0] is not None else \
            (got["rate"][n], got["trips"][n]) == want, (view, i, want, got["rate"][n], got["trips"][n])


@pytest.fixture()
def repo(spark, tmp_path):
    data = tmp_path / "data"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "defs.py").write_text(DEFS.replace("{data}", str(data)))
    return repo, data, apply_feast_repo(repo, "incr", PORT, DB)


def test_late_rows_with_old_timestamps_reach_redis_on_the_next_incremental_run(spark, repo, capsys):
    repo_path, data, fs = repo
    first = rows([(k, timedelta(hours=h, minutes=k)) for k in range(1, 41) for h in (0, 1, 2)])
    for name, cdf in (("rides", True), ("rides_nocdf", False)):
        append(spark, first, f"{data}/{name}", cdf)
    store = FeatureStore(repo_path=repo_path, spark=spark)

    reports = {r.view: r for r in store.materialize_incremental(E1)}
    assert {v: (r.rows, r.written, r.skipped, r.failed) for v, r in reports.items()} == {
        "rides": (40, 40, 0, 0), "rides_nocdf": (40, 40, 0, 0)}
    assert reports["rides"].source == "first run: window at version 0"

    late = rows(
        [(k, timedelta(hours=3, minutes=k)) for k in range(1, 11)]  # old, but newer than what Redis holds
        + [(k, timedelta(minutes=30)) for k in range(11, 21)]  # old and older than Redis: skipped
        + [(k, timedelta(days=1, hours=2)) for k in range(21, 26)]  # inside the new window
        + [(k, timedelta(hours=1)) for k in range(41, 46)]  # new keys, old timestamps
        + [(26, timedelta(days=2, hours=1))]  # after the new end: not pushed
    )
    for name, cdf in (("rides", True), ("rides_nocdf", False)):
        append(spark, late, f"{data}/{name}", cdf)

    assert cli(["--repo", str(repo_path), "materialize-incremental", "--end", E2.isoformat()]) == 0
    out = capsys.readouterr().out
    assert ("rides: 30 keys, 20 written, 10 skipped (not newer), 0 failed "
            "[window after 2026-03-02T00:00:00+00:00 + change feed of versions 1..1]") in out
    assert ("rides_nocdf: 45 keys, 20 written, 25 skipped (not newer), 0 failed [whole window at version 1: "
            "no change data feed for versions 1..1 (set delta.enableChangeDataFeed=true on the source)]") in out

    expected = oracle(pd.concat([first, late]), E2)
    assert len(expected) == 45
    for name in ("rides", "rides_nocdf"):
        assert_served(fs, name, expected)

    fresh = feast.FeatureStore(repo_path=str(repo_path))  # Feast sees the intervals the engine recorded
    assert fresh.get_feature_view("rides").most_recent_end_time == E2

    again = {r.view: r for r in store.materialize_incremental(E2)}
    assert (again["rides"].rows, again["rides"].source) == (0, "window after 2026-03-03T00:00:00+00:00, "
                                                                "no new Delta versions")


def test_a_recreated_table_or_a_changed_view_starts_afresh(spark, repo):
    """A watermark holds for one source table (its Delta id) and one view definition."""
    import dataclasses
    import shutil

    from featurestore_spark.online.incremental import materialize_view_incremental
    from featurestore_spark.online.settings import redis_settings

    repo_path, data, _ = repo
    append(spark, rows([(k, timedelta(hours=1)) for k in range(1, 6)]), f"{data}/rides", True)
    store = FeatureStore(repo_path=repo_path, spark=spark)
    settings = redis_settings(dict(store.repo.online_store))
    view = store.repo.views["rides"]

    def run(v):
        return materialize_view_incremental(spark, store.repo, v, settings, E1, store.state_path)

    assert run(view).source == "first run: window at version 0"
    assert run(view).source.endswith("no new Delta versions")
    narrower = dataclasses.replace(view, features=view.features[:1])
    assert run(narrower).source == "first run: window at version 0"  # another definition: its own watermark

    shutil.rmtree(data / "rides")  # the same path, a new table: versions restart at 0
    append(spark, rows([(k, timedelta(hours=2)) for k in range(1, 9)]), f"{data}/rides", True)
    report = run(view)
    assert (report.source, report.rows, report.written) == ("first run: window at version 0", 8, 8)


def test_vacuumed_change_data_falls_back_to_the_whole_window(spark, repo):
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    repo_path, data, fs = repo
    path = f"{data}/rides"
    append(spark, rows([(k, timedelta(hours=1)) for k in range(1, 6)]), path, True)
    store = FeatureStore(repo_path=repo_path, spark=spark)
    store.materialize_incremental(E1, ["rides"])
    DeltaTable.forPath(spark, path).update(F.col("driver_id") == 1, {"rate": F.lit(-1.0)})  # change files
    newer = rows([(k, timedelta(hours=5)) for k in range(1, 4)])
    spark.createDataFrame(newer, SCHEMA).write.format("delta").mode("overwrite").save(path)
    vacuum_everything(spark, path)
    report = store.materialize_incremental(E1 + timedelta(hours=1), ["rides"])[0]
    assert report.source.startswith("whole window at version ") and "were vacuumed" in report.source
    assert (report.rows, report.written, report.failed) == (3, 3, 0)
    assert_served(fs, "rides", oracle(newer, E1).loc[[1, 2, 3]].combine_first(
        oracle(rows([(k, timedelta(hours=1)) for k in range(4, 6)]), E1)))


def test_a_watermark_reads_back_in_utc_on_a_driver_east_of_utc(spark, tmp_path, monkeypatch):
    """PySpark returns timestamps as naive datetimes in the driver process's local time zone: the
    watermark must not take those for UTC (an hour's rows would be skipped on every run in Berlin)."""
    import time

    from featurestore_spark.online.watermarks import last_watermark, record_watermark

    path = str(tmp_path / "marks")
    record_watermark(spark, path, project="p", view="v", start=None, end=E1, source_version=3, source="test",
                     written=1, skipped=0, identity="id")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        mark = last_watermark(spark, path, "p", "v", "id")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (mark.end, mark.source_version) == (E1, 3)


@pytest.mark.parametrize("lookups", [200, 0], ids=["looked-up", "listed"])
def test_change_files_vacuumed_under_a_kept_data_file_fall_back_to_the_whole_window(spark, repo, lookups, monkeypatch):
    """With deletion vectors an UPDATE keeps its data file and writes the changed rows to a new file
    and to a change-data file; VACUUM then deletes only the change-data file, which the feed needs."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from featurestore_spark import delta_io

    monkeypatch.setattr(delta_io, "_LOOKUPS", lookups)  # a few files looked up, or many: their folders listed
    repo_path, data, fs = repo
    path = f"{data}/rides"
    first = rows([(k, timedelta(hours=1)) for k in range(1, 6)])
    spark.createDataFrame(first, SCHEMA).write.format("delta").option("delta.enableChangeDataFeed", "true").option(
        "delta.enableDeletionVectors", "true").save(path)
    store = FeatureStore(repo_path=repo_path, spark=spark)
    store.materialize_incremental(E1, ["rides"])
    later = T0 + timedelta(hours=2)
    DeltaTable.forPath(spark, path).update(F.col("driver_id") == 1, {"event_timestamp": F.lit(later),
                                                                    "rate": F.lit(-1.0)})
    vacuum_everything(spark, path)
    assert not list((data / "rides" / "_change_data").glob("*.parquet"))  # gone, the data files kept
    report = store.materialize_incremental(E1 + timedelta(hours=1), ["rides"])[0]
    assert report.source.startswith("whole window at version ")
    assert "1 change data file(s) of versions 1..3 were vacuumed" in report.source
    assert (report.written, report.failed) == (1, 0)
    updated = first.assign(event_timestamp=[later if k == 1 else t for k, t in zip(first.driver_id, first.event_timestamp)],
                           rate=[-1.0 if k == 1 else r for k, r in zip(first.driver_id, first.rate)])
    assert_served(fs, "rides", oracle(updated, E1))


def test_freshness_follows_the_source_and_the_incremental_pushes(spark, repo, capsys):
    """Newest event time and age against the ttl, and how far the last incremental push got, through
    a push, an OPTIMIZE and a later append; the pandas rows as written are the reference."""
    repo_path, data, _ = repo
    first = rows([(k, timedelta(hours=h, minutes=k)) for k in range(1, 11) for h in (0, 1, 2)])
    append(spark, first, f"{data}/rides", True)
    spark.createDataFrame(first.head(0), SCHEMA).write.format("delta").save(f"{data}/rides_nocdf")  # no rows
    store = FeatureStore(repo_path=repo_path, spark=spark)
    newest = first["event_timestamp"].max().to_pydatetime()

    rides, empty = store.freshness(["rides", "rides_nocdf"], now=E1)
    assert (rides.newest, rides.latest, rides.age, rides.version, rides.stale) == (newest, newest, E1 - newest, 0, False)
    assert (rides.pushed_through, rides.pushed_version, rides.behind) == (None, None, True)
    assert (empty.newest, empty.stale, empty.behind) == (None, True, False)  # a ttl and no row in it
    assert store.freshness(["rides"], now=newest + timedelta(days=365))[0].stale is False  # ttl inclusive
    assert store.freshness(["rides"], now=newest + timedelta(days=365, microseconds=1))[0].stale is True
    early = store.freshness(["rides"], now=T0 + timedelta(minutes=30))[0]  # rows after the check do not count
    assert (early.newest, early.latest) == (first["event_timestamp"][first["event_timestamp"] <= T0 + timedelta(
        minutes=30)].max().to_pydatetime(), newest)
    before = store.freshness(["rides"], now=T0 - timedelta(days=1))[0]
    assert (before.newest, before.stale) == (None, True)
    assert before.summary().startswith("rides: no rows up to 2026-02-28T00:00:00Z (ttl 365d), version 0, rows up to "
                                       "2026-03-01T02:10:00Z after it; STALE; no incremental push")

    store.materialize_incremental(E1, ["rides"])
    rides = store.freshness(["rides"], now=E1)[0]
    assert (rides.pushed_through, rides.pushed_version, rides.versions_behind, rides.lag, rides.behind) == (
        E1, 0, 0, timedelta(0), False)
    spark.sql(f"OPTIMIZE delta.`{data}/rides`")  # a new version that adds no rows
    rides = store.freshness(["rides"], now=E1)[0]
    assert (rides.version, rides.versions_behind, rides.new_rows, rides.behind) == (1, 1, False, False)

    later = rows([(3, timedelta(days=1, hours=2))])  # past the push's end, in a new version
    append(spark, later, f"{data}/rides", True)
    rides = store.freshness(["rides"], now=E2)[0]
    assert (rides.newest, rides.version, rides.versions_behind, rides.new_rows, rides.lag, rides.behind) == (
        E1 + timedelta(hours=2), 2, 2, True, timedelta(hours=2), True)
    assert rides.summary() == ("rides: newest 2026-03-02T02:00:00Z, age 22h (ttl 365d), version 2; pushed through "
                               "2026-03-02T00:00:00Z at version 0; BEHIND: 2 newer version(s), adding rows; 2h of "
                               "event time past the push")
    offline = freshness(spark, store.repo, [dataclasses.replace(store.repo.views["rides"], online=False)],
                        store.state_path, E2)[0]
    assert (offline.behind, offline.summary().endswith("; offline only")) == (False, True)

    base = ["--repo", str(repo_path), "freshness", "--at", E2.isoformat()]
    capsys.readouterr()
    assert cli(base + ["--fail-if-stale", "--views", "rides"]) == 0
    assert cli(base + ["--fail-if-behind", "--views", "rides"]) == 4
    assert cli(base + ["--fail-if-stale"]) == 4  # rides_nocdf has no row within its ttl
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [rides.summary(), "rides_nocdf: no rows up to 2026-03-03T00:00:00Z (ttl 365d), version 0; STALE; "
                                         "no incremental push of this table and definition"]
    with pytest.raises(UnknownFeatureViewError, match="rides_typo"):
        store.freshness(["rides_typo"])
