"""Training-set requests: validation, atomic Delta output with a manifest, reproduce by time travel, catalog."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.errors import (
    MissingColumnError,
    OutputExistsError,
    RequestError,
    SourceVersionError,
    UnknownFeatureError,
)
from featurestore_spark.repo import project_view
from featurestore_spark.specs import FeatureRef, FeatureServiceSpec
from featurestore_spark.training import catalog
from featurestore_spark.training.build import create_training_set, reproduce_training_set
from featurestore_spark.training.request import load_request
from tests.helpers import T0, repo_of, vacuum_everything, view_spec, write_delta
from tests.oracle import OracleView, normalise, pit_join

STATS_SCHEMA = "driver_id long, ts timestamp, created timestamp, rate double, trips int"
ENTITY_SCHEMA = "driver_id long, event_timestamp timestamp, label int"


def stats_rows(seed: int, n: int, drivers: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 3 * 24 * 60, n)]
    return pd.DataFrame({
        "driver_id": rng.integers(1, drivers + 1, n),
        "ts": ts,
        "created": [t + timedelta(seconds=int(s)) for t, s in zip(ts, rng.integers(0, 5, n))],
        "rate": np.where(rng.random(n) < 0.1, np.nan, rng.random(n).round(6)),
        "trips": rng.integers(0, 100, n).astype("int32"),
    })


@pytest.fixture()
def world(spark, tmp_path):
    """A view over a Delta table, a Delta entity table, a catalog, and a request writing to tmp_path."""
    stats = write_delta(spark, stats_rows(1, 400), str(tmp_path / "stats"), STATS_SCHEMA)
    rng = np.random.default_rng(2)
    entities = pd.DataFrame({
        "driver_id": rng.integers(1, 15, 150),
        "event_timestamp": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 4 * 24 * 60, 150)],
        "label": rng.integers(0, 2, 150).astype("int32"),
    })
    write_delta(spark, entities, str(tmp_path / "entities"), ENTITY_SCHEMA)
    view = view_spec("stats", stats, {"driver_id": "INT64"}, {"rate": "DOUBLE", "trips": "INT32"},
                     ttl=timedelta(days=1), created="created")
    request = {
        "name": "rides",
        "entities": {"delta": str(tmp_path / "entities")},
        "features": ["stats:rate", "stats:trips"],
        "output": {"path": str(tmp_path / "out")},
    }
    return {"repo": repo_of(view), "request": request, "catalog": str(tmp_path / "catalog"), "tmp": tmp_path}


def build(spark, world, request=None, **kw):
    return create_training_set(spark, world["repo"], request or world["request"], catalog=world["catalog"], **kw)


def rows(spark, path: str, version: int | None = None) -> pd.DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    pdf = reader.load(path).toPandas()
    return pdf.sort_values(list(pdf.columns), na_position="first").reset_index(drop=True)


def oracle(spark, world, stats_version: int | None = None) -> list[dict]:
    """Independent reference: the brute-force pandas join over the raw tables."""
    stats = delta_io.read_delta(spark, str(world["tmp"] / "stats"), what="t", version=stats_version).toPandas()
    view = OracleView(name="stats", rows=stats, join_keys=("driver_id",), features=("rate", "trips"),
                      ttl=timedelta(days=1), has_created=True)
    entity = spark.read.format("delta").load(str(world["tmp"] / "entities")).toPandas()
    return pit_join(entity, "event_timestamp", [view])


def assert_matches_oracle(got: pd.DataFrame, expected: list[dict]) -> None:
    key = ["driver_id", "event_timestamp", "label"]
    assert len(got) == len(expected)
    want = {}
    for e in expected:
        want.setdefault(tuple(e[k] for k in key), []).append(e)
    for _, r in got.iterrows():
        options = want[tuple(r[k] for k in key)]
        assert any(
            all((e[f"stats:{f}"] is None and normalise(r[f]) is None) or
                (e[f"stats:{f}"] is not None and normalise(r[f]) in e[f"stats:{f}"]) for f in ("rate", "trips"))
            for e in options
        ), (r.to_dict(), options)


# --- requests --------------------------------------------------------------------------------------


def test_request_files_and_objects_validate_strictly(tmp_path):
    good = {"name": "rides", "entities": {"delta": "/d/e"}, "features": "ride_ranking", "output": {"path": "/d/o"}}
    (tmp_path / "r.yaml").write_text("name: rides\nentities: {delta: /d/e}\nfeatures: [a:b]\noutput: {path: /d/o}\n")
    (tmp_path / "r.json").write_text(json.dumps(good))
    assert load_request(tmp_path / "r.yaml").features == ("a:b",)
    assert load_request(str(tmp_path / "r.json")).output.mode == "error"
    relative = load_request({**good, "entities": {"delta": "data/e"}, "output": {"path": "out"}})
    assert (relative.entities.delta, relative.output.path) == (os.path.abspath("data/e"), os.path.abspath("out"))
    uris = load_request({**good, "entities": {"delta": "file:/d/e"}, "output": {"path": "hdfs:/d/o"}})
    assert (uris.entities.delta, uris.output.path) == ("file:/d/e", "hdfs:/d/o")  # Hadoop's forms, kept
    (tmp_path / "v.yaml").write_text("name: rides\nentities: {sql: 'SELECT $x FROM ${FSSPARK_TEST_T}'}\n"
                                     "features: [a:b]\noutput: {path: /d/o}\n")
    os.environ["FSSPARK_TEST_T"] = "events"
    try:
        assert load_request(tmp_path / "v.yaml").entities.sql == "SELECT $x FROM events"  # only ${NAME} expands
    finally:
        del os.environ["FSSPARK_TEST_T"]
    with pytest.raises(RequestError, match=r"v.yaml: environment variable\(s\) FSSPARK_TEST_T not set"):
        load_request(tmp_path / "v.yaml")

    def bad(change: dict, match: str) -> None:
        with pytest.raises(RequestError, match=match):
            load_request({**good, **change})

    bad({"entites": {}}, r"entites: unknown key \(allowed: name, entities, features, output, options\)")
    bad({"output": {"path": "/o", "mode": "replace"}},
        r"output.mode: Input should be 'error', 'overwrite' or 'append' \(got 'replace'\)")
    bad({"output": {"path": "/o", "table": "t"}}, r"output: give exactly one of path or table")
    bad({"entities": {"delta": "/e", "sql": "SELECT 1"}}, r"entities: give exactly one of delta, table, parquet, sql "
        r"\(got delta, sql\)")
    bad({"entities": {"delta": "/e", "versoin": 3}}, r"entities.versoin: unknown key \(allowed: delta, table, parquet")
    bad({"options": {"full_feature_names": "maybe"}}, r"options.full_feature_names: Input should be a valid boolean")
    bad({"options": {"start_time": "2026-02-01", "end_time": "2026-01-01"}}, r"start_time must be before end_time")
    bad({"name": "no spaces"}, r"name: String should match pattern")
    with pytest.raises(RequestError, match=r"request .*missing.yaml: no such file"):
        load_request(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(RequestError, match=r"broken.yaml: not valid YAML"):
        load_request(tmp_path / "broken.yaml")


def test_bad_requests_fail_before_any_spark_job(spark, world):
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("bad-requests", "must stay empty")
    try:
        with pytest.raises(UnknownFeatureError, match=r"feature view 'stats' has no feature 'rat'"):
            build(spark, world, {**world["request"], "features": ["stats:rat"]})
        with pytest.raises(MissingColumnError, match=r"entity_df lacks join key 'driver_id'"):
            build(spark, world, {**world["request"],
                                 "entities": {"sql": "SELECT TIMESTAMP'2026-03-01' AS event_timestamp"}})
        with pytest.raises(RequestError, match=r"output.partition_by names day, not columns of the training set"):
            build(spark, world, {**world["request"], "output": {"path": str(world["tmp"] / "o"), "partition_by": ["day"]}})
        assert list(tracker.getJobIdsForGroup("bad-requests")) == []
    finally:
        spark.sparkContext.setJobGroup("", "")
    assert not delta_io.exists(spark, str(world["tmp"] / "o"))


# --- build, manifest, modes ------------------------------------------------------------------------


def test_build_writes_the_point_in_time_join_with_a_manifest(spark, world):
    steps: list[str] = []
    result = build(spark, world, progress=steps.append)
    assert steps == ["[1/5] check the request", "[2/5] pin source versions", "[3/5] plan the join",
                     "[4/5] join and write", "[5/5] record the manifest"]
    got = rows(spark, result.output)
    assert list(got.columns) == ["driver_id", "event_timestamp", "label", "rate", "trips"]
    assert_matches_oracle(got, oracle(spark, world))

    m = json.loads(delta_io.read_text(spark, result.manifest_path))
    stats_version = DeltaTable.forPath(spark, str(world["tmp"] / "stats")).history(1).first()["version"]
    assert m["source_versions"] == {"stats": stats_version}
    assert m["entity_source"] == {"kind": "delta", "location": str(world["tmp"] / "entities"), "version": 0,
                                  "commit": delta_io.commit_id(spark, str(world["tmp"] / "entities"), 0)}
    assert m["output"]["version"] == result.version == 0
    assert m["rows_in"] == m["rows_out"] == result.rows_out == 150
    assert m["null_counts"] == {"rate": int(got["rate"].isna().sum()), "trips": int(got["trips"].isna().sum())}
    assert m["features"] == ["stats:rate", "stats:trips"] and m["request"]["name"] == "rides"
    assert len(m["definitions_sha256"]) == 64 and m["library_versions"]["pyspark"] == spark.version
    assert m["seconds"] > 0
    # The commit itself carries the manifest's core: the table alone says how to rebuild it.
    meta = json.loads(DeltaTable.forPath(spark, result.output).history(1).first()["userMetadata"])
    assert meta["build_id"] == m["build_id"] and meta["feature_views"] == m["feature_views"]
    assert result.summary() == f"training set rides: 150 rows in {result.seconds:.1f} s -> {result.output} (Delta version 0)"


def test_output_modes_time_range_and_partitioning(spark, world):
    first = build(spark, world)
    with pytest.raises(OutputExistsError, match=r"output '.*out' already exists; set output.mode to overwrite"):
        build(spark, world)
    start, end = "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"
    narrowed = {**world["request"], "output": {"path": first.output, "mode": "overwrite", "partition_by": ["label"]},
                "options": {"start_time": start, "end_time": end}}
    second = build(spark, world, narrowed)
    got = rows(spark, second.output)
    ts = got["event_timestamp"].dt.tz_localize("UTC") if got["event_timestamp"].dt.tz is None else got["event_timestamp"]
    assert second.version == 1 and len(got) == second.rows_out > 0
    assert ts.min() >= pd.Timestamp(start) and ts.max() < pd.Timestamp(end)
    assert DeltaTable.forPath(spark, second.output).detail().first()["partitionColumns"] == ["label"]
    assert len(rows(spark, first.output, version=0)) == 150  # the earlier build stays readable
    appended = build(spark, world, {**narrowed, "output": {**narrowed["output"], "mode": "append"}})
    assert appended.version == 2 and spark.read.format("delta").load(first.output).count() == 2 * second.rows_out


def test_an_output_folder_that_is_not_delta_is_refused_in_every_mode(spark, world):
    """A parquet folder, or a folder of anyone's files, is never turned into a Delta table with the old
    files beside it; an empty folder is fine. An append of other columns names the column."""
    tmp = world["tmp"]
    spark.range(3).write.parquet(str(tmp / "parquet"))
    (tmp / "plain").mkdir()
    (tmp / "plain" / "notes.txt").write_text("mine")
    for folder in (tmp / "parquet", tmp / "plain"):
        before = sorted(p.name for p in folder.iterdir())
        for mode in ("error", "overwrite", "append"):
            with pytest.raises(OutputExistsError, match=rf"^output '{folder}' exists and is not a Delta table \(it "
                               r"holds .*\); writing there would leave those files beside the Delta table"):
                build(spark, world, {**world["request"], "output": {"path": str(folder), "mode": mode}})
        assert sorted(p.name for p in folder.iterdir()) == before

    (tmp / "empty").mkdir()
    assert build(spark, world, {**world["request"], "output": {"path": str(tmp / "empty")}}).rows_out == 150
    with pytest.raises(RequestError, match=r"^output.mode append: the rows do not fit '.*empty': the table's column "
                       r"trips int is missing; use overwrite or another output$"):
        build(spark, world, {**world["request"], "features": ["stats:rate"],
                             "output": {"path": str(tmp / "empty"), "mode": "append"}})


def test_a_service_projection_is_built_appended_in_the_tables_order_and_reproduced(spark, world):
    """A FeatureService projecting the view onto another entity column (with_name + with_join_key_map):
    the same rows as the plain request, under the mapped column; appended to a table whose feature
    columns are in another order (as tables built when features were grouped by view are); rebuilt from
    the recorded definitions after the source changed."""
    plain = rows(spark, build(spark, world).output)
    trips = str(world["tmp"] / "trips")
    spark.read.format("delta").load(str(world["tmp"] / "entities")).withColumnRenamed(
        "driver_id", "origin_id").write.format("delta").save(trips)
    projection = SimpleNamespace(name_alias="origin", join_key_map={"driver_id": "origin_id"})
    origin = project_view(world["repo"].views["stats"], projection, "feature service 'trip'")
    service = FeatureServiceSpec(name="trip", features=tuple(
        FeatureRef(view="origin", feature=f, projected=origin) for f in ("rate", "trips")))
    repo = dataclasses.replace(world["repo"], services={"trip": service})
    request = {**world["request"], "entities": {"delta": trips}, "features": "trip",
               "output": {"path": str(world["tmp"] / "trip_out")}}
    built = create_training_set(spark, repo, request, catalog=world["catalog"])
    got = rows(spark, built.output)
    pd.testing.assert_frame_equal(got, plain.rename(columns={"driver_id": "origin_id"}))

    swapped = str(world["tmp"] / "swapped")
    spark.read.format("delta").load(built.output).select("origin_id", "event_timestamp", "label", "trips", "rate").write.format(
        "delta").save(swapped)
    create_training_set(spark, repo, {**request, "output": {"path": swapped, "mode": "append"}}, catalog=world["catalog"])
    doubled = rows(spark, swapped)
    assert list(doubled.columns) == ["origin_id", "event_timestamp", "label", "trips", "rate"]
    once = got[list(doubled.columns)].sort_values(list(doubled.columns), na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(doubled.iloc[::2].reset_index(drop=True), once)
    pd.testing.assert_frame_equal(doubled.iloc[1::2].reset_index(drop=True), once)

    DeltaTable.forPath(spark, str(world["tmp"] / "stats")).update(F.lit(True), {"rate": F.lit(-1.0)})
    again = reproduce_training_set(spark, world["repo"], built.output, str(world["tmp"] / "trip_again"),
                                   catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, again.output), got)


def test_a_catalog_table_as_output_is_built_recorded_and_reproduced(spark, world):
    table = f"rides_ts_{os.getpid()}"
    try:
        first = build(spark, world, {**world["request"], "output": {"table": table}})
        assert (first.version, first.rows_out) == (0, 150)
        assert first.manifest["output"]["location"] == table
        assert_matches_oracle(rows(spark, delta_io.table_path(spark, table)), oracle(spark, world))
        again = build(spark, world, {**world["request"], "output": {"table": table, "mode": "overwrite"}})
        assert again.version == 1  # found by its build id in the table's history
        rebuilt = reproduce_training_set(spark, world["repo"], table, str(world["tmp"] / "rebuilt"),
                                         catalog=world["catalog"], version=0)
        pd.testing.assert_frame_equal(rows(spark, rebuilt.output), rows(spark, delta_io.table_path(spark, table), 0))
        spark.range(1).write.format("parquet").saveAsTable(f"{table}_parquet")
        with pytest.raises(RequestError, match=rf"output table '{table}_parquet' exists but is not a Delta table"):
            build(spark, world, {**world["request"], "output": {"table": f"{table}_parquet", "mode": "overwrite"}})
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table}")
        spark.sql(f"DROP TABLE IF EXISTS {table}_parquet")


def test_failed_overwrite_leaves_the_previous_version(spark, world):
    first = build(spark, world)
    before = rows(spark, first.output)
    # A column that raises while the rows are written (statistics never compute it).
    failing = {"sql": f"SELECT *, CASE WHEN driver_id = 7 THEN raise_error('injected failure') ELSE 1 END AS probe "
                      f"FROM delta.`{world['tmp'] / 'entities'}`"}
    request = {**world["request"], "entities": failing, "output": {"path": first.output, "mode": "overwrite"}}
    with pytest.raises(Exception, match="injected failure"):
        build(spark, world, request)
    assert DeltaTable.forPath(spark, first.output).history().count() == 1
    pd.testing.assert_frame_equal(rows(spark, first.output), before)
    assert [b["output"]["version"] for b in catalog.builds(spark, world["catalog"])] == [0]


def test_failed_first_build_leaves_no_table(spark, world):
    failing = {"sql": f"SELECT *, CASE WHEN driver_id = 7 THEN raise_error('injected failure') ELSE 1 END AS probe "
                      f"FROM delta.`{world['tmp'] / 'entities'}`"}
    with pytest.raises(Exception, match="injected failure"):
        build(spark, world, {**world["request"], "entities": failing})
    assert not delta_io.exists(spark, str(world["tmp"] / "out"))
    assert catalog.builds(spark, world["catalog"]) == []


# --- reproduce and catalog -------------------------------------------------------------------------


def test_reproduce_gives_the_same_rows_after_sources_change(spark, world):
    first = build(spark, world)
    original = rows(spark, first.output)
    stats = str(world["tmp"] / "stats")
    late = stats_rows(3, 200).assign(created=lambda d: d["created"] + timedelta(days=9))  # late corrections
    spark.createDataFrame(late, STATS_SCHEMA).write.format("delta").mode("append").save(stats)
    table = DeltaTable.forPath(spark, stats)
    table.update(F.col("driver_id") == 3, {"rate": F.lit(-1.0)})
    table.delete(F.col("driver_id") == 5)
    spark.createDataFrame(pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "label": [1]}),
                          ENTITY_SCHEMA).write.format("delta").mode("append").save(str(world["tmp"] / "entities"))

    fresh = rows(spark, build(spark, world, {**world["request"], "output": {"path": str(world["tmp"] / "fresh")}}).output)
    # The changes matter today: rebuilt from the latest versions, the original entity rows get other values.
    today = original[["driver_id", "event_timestamp", "label"]].merge(fresh, how="left").drop_duplicates()
    assert len(fresh) == 151 and not today.reset_index(drop=True).equals(original.drop_duplicates().reset_index(drop=True))

    again = reproduce_training_set(spark, world["repo"], first.output, str(world["tmp"] / "again"), catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, again.output), original)
    from_file = reproduce_training_set(spark, world["repo"], first.manifest_path, str(world["tmp"] / "again2"),
                                       catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, from_file.output), original)
    assert again.manifest["reproduces"] == {"output": first.output, "build_id": first.manifest["build_id"], "version": 0}
    assert again.manifest["source_versions"] == first.manifest["source_versions"]

    names = [(b["name"], b["output"]["location"]) for b in catalog.builds(spark, world["catalog"], "rides")]
    assert names[-1] == ("rides", first.output) and len(names) == 4


def test_reproduce_says_so_when_a_pinned_version_was_vacuumed(spark, world, monkeypatch):
    first = build(spark, world)
    stats = str(world["tmp"] / "stats")
    spark.createDataFrame(stats_rows(4, 50), STATS_SCHEMA).write.format("delta").mode("overwrite").save(stats)
    vacuum_everything(spark, stats)
    with pytest.raises(SourceVersionError, match=r"source of feature view 'stats': version 0 of Delta table '.*stats' "
                                                 r"is no longer readable: \d+ of its data files are gone"):
        reproduce_training_set(spark, world["repo"], first.output, str(world["tmp"] / "again"), catalog=world["catalog"])
    monkeypatch.setattr(delta_io, "_LOOKUPS", 0)  # as for many files: one listing per folder, not a lookup per file
    with pytest.raises(SourceVersionError, match=r"is no longer readable: \d+ of its data files are gone"):
        reproduce_training_set(spark, world["repo"], first.output, str(world["tmp"] / "again"), catalog=world["catalog"])
    assert not delta_io.exists(spark, str(world["tmp"] / "again"))


def test_reproduce_refuses_a_source_dropped_and_created_again_in_its_place(spark, world):
    """Versions of a table created again restart at 0: its version 0 is not what the build read. A table
    replaced in place (CREATE OR REPLACE) keeps its log, so its pinned version still reads the same."""
    import shutil

    stats = str(world["tmp"] / "stats")
    first = build(spark, world)
    assert first.manifest["source_commits"] == {"stats": delta_io.commit_id(spark, stats, 0)} != {"stats": None}
    spark.createDataFrame(stats_rows(6, 300), STATS_SCHEMA).createOrReplaceTempView("replacement")
    spark.sql(f"CREATE OR REPLACE TABLE delta.`{stats}` USING delta AS SELECT * FROM replacement")
    assert DeltaTable.forPath(spark, stats).history(1).first()["version"] == 1
    replaced = reproduce_training_set(spark, world["repo"], first.output, str(world["tmp"] / "replaced"),
                                      catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, replaced.output), rows(spark, first.output))

    shutil.rmtree(world["tmp"] / "stats")
    write_delta(spark, stats_rows(5, 400), stats, STATS_SCHEMA)
    with pytest.raises(SourceVersionError, match=r"source of feature view 'stats': version 0 of the Delta table at "
                       r"'.*stats' is not the one the build read: the table was dropped and created again \(commit "
                       r"\S+, the build read \S+\)"):
        reproduce_training_set(spark, world["repo"], first.output, str(world["tmp"] / "again"), catalog=world["catalog"])
    second = build(spark, world, {**world["request"], "output": {"path": str(world["tmp"] / "second")}})
    shutil.rmtree(world["tmp"] / "entities")
    write_delta(spark, pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "label": [1]}),
                str(world["tmp"] / "entities"), ENTITY_SCHEMA)
    with pytest.raises(SourceVersionError, match=r"entity source: version 0 of the Delta table at '.*entities' is not "
                       r"the one the build read"):
        reproduce_training_set(spark, world["repo"], second.output, str(world["tmp"] / "again"),
                               catalog=world["catalog"])


def test_reproduce_reads_a_shallow_clone_whose_files_are_its_source_tables(spark, world, monkeypatch):
    """A shallow clone's files live in the table it was cloned from: present, not vacuumed."""
    import dataclasses

    clone = str(world["tmp"] / "stats_clone")
    spark.sql(f"CREATE TABLE delta.`{clone}` SHALLOW CLONE delta.`{world['tmp'] / 'stats'}`")
    view = world["repo"].views["stats"]
    repo = repo_of(dataclasses.replace(view, source=dataclasses.replace(view.source, path=clone)))
    first = create_training_set(spark, repo, world["request"], catalog=world["catalog"])
    again = reproduce_training_set(spark, repo, first.output, str(world["tmp"] / "again"), catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, again.output), rows(spark, first.output))
    assert_matches_oracle(rows(spark, again.output), oracle(spark, world))
    monkeypatch.setattr(delta_io, "_LOOKUPS", 0)  # the same by listing folders
    listed = reproduce_training_set(spark, repo, first.output, str(world["tmp"] / "listed"), catalog=world["catalog"])
    pd.testing.assert_frame_equal(rows(spark, listed.output), rows(spark, first.output))


def test_a_version_no_longer_in_the_log_is_named(spark, world):
    with pytest.raises(SourceVersionError, match=r"stats: version 99 of Delta table '.*stats' can no longer be read"):
        delta_io.read_delta(spark, str(world["tmp"] / "stats"), what="stats", version=99)
