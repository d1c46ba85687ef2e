"""Readable cases of docs/semantics.md section 1, each next to the rule it checks."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pandas as pd
import pytest
from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64
from pyspark.sql import functions as F

from featurestore_spark.errors import FeatureNameCollisionError, InvalidFeatureRefError, NotSupportedError, RepoError
from featurestore_spark.offline import retrieval
from featurestore_spark.repo import repo_from_feast
from tests.helpers import minutes, repo_of, view_spec, write_delta

US = timedelta(microseconds=1)


@pytest.fixture(scope="module")
def repo(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    stats = pd.DataFrame({
        "driver_id": [1, 1, 1, 1, 2, 2, 3],
        "ts": [minutes(0), minutes(10), minutes(10), minutes(20), minutes(0), minutes(0), minutes(0)],
        "created": [minutes(0), minutes(11), minutes(30), None, minutes(1), None, minutes(0)],
        "rate": [0.0, 0.1, 0.2, 0.3, 2.0, 2.5, 3.0],
    })
    write_delta(spark, stats, f"{root}/stats", "driver_id long, ts timestamp, created timestamp, rate double")
    ttl_view = view_spec("stats", f"{root}/stats", {"driver_id": "INT64"}, {"rate": "DOUBLE"},
                         ttl=timedelta(minutes=5), created="created")
    forever = view_spec("stats_forever", f"{root}/stats", {"driver_id": "INT64"}, {"rate": "DOUBLE"},
                        created="created")
    return repo_of(ttl_view, forever)


def features(spark, repo, times, refs=("stats:rate",), driver=1, **kw):
    df = spark.createDataFrame(
        pd.DataFrame({"i": range(len(times)), "driver_id": [driver] * len(times), "event_timestamp": times}),
        "i long, driver_id long, event_timestamp timestamp",
    )
    out = retrieval.get_historical_features(spark, repo, df, list(refs), full_feature_names=True, **kw)
    return [tuple(r)[3:] for r in sorted(out.collect(), key=lambda r: r["i"])]


def test_ttl_window_is_inclusive_at_both_ends(spark, repo):
    # driver 1 rows at minute 0 (0.0), minute 10 (0.1 / 0.2), minute 20 (0.3); ttl 5 minutes
    got = features(spark, repo, [minutes(0), minutes(5), minutes(5) + US, minutes(10) - US])
    assert got == [(0.0,), (0.0,), (None,), (None,)]


def test_created_timestamp_breaks_ties_and_null_created_ranks_lowest(spark, repo):
    # minute 10 has created 11 (0.1) and 30 (0.2): the later created wins
    assert features(spark, repo, [minutes(10)]) == [(0.2,)]
    # driver 2: two rows at minute 0, created minute 1 (2.0) and null (2.5): null ranks lowest
    assert features(spark, repo, [minutes(0)], driver=2) == [(2.0,)]


def test_filter_by_created_timestamp_uses_what_was_known(spark, repo):
    # at minute 12 the row created at minute 30 was not known yet; the one created at 11 was
    assert features(spark, repo, [minutes(12)], filter_by_created_timestamp=True) == [(0.1,)]
    # at minute 31 (ttl 5: window [26, 31]) nothing qualifies: minute 20's row has a null created time
    assert features(spark, repo, [minutes(31)], filter_by_created_timestamp=True) == [(None,)]
    # unlimited ttl: at 21 the row created at 30 is unknown; minute 20's row (null created) is never used
    got = features(spark, repo, [minutes(21), minutes(31)], refs=("stats_forever:rate",), filter_by_created_timestamp=True)
    assert got == [(0.1,), (0.2,)]
    # driver 2 at minute 0: the created-minute-1 row is unknown, the null-created one is excluded
    assert features(spark, repo, [minutes(0)], driver=2, filter_by_created_timestamp=True) == [(None,)]


def test_unlimited_ttl_reaches_any_distance_back(spark, repo):
    got = features(spark, repo, [minutes(60 * 24 * 365)], refs=("stats_forever:rate",))
    assert got == [(0.3,)]


def test_nothing_from_the_future(spark, repo):
    assert features(spark, repo, [minutes(0) - US], refs=("stats_forever:rate",)) == [(None,)]


def test_unknown_key_and_null_key_give_nulls(spark, repo):
    df = spark.createDataFrame(
        pd.DataFrame({"driver_id": [99, None], "event_timestamp": [minutes(1), minutes(1)]}),
        "driver_id long, event_timestamp timestamp",
    )
    out = retrieval.get_historical_features(spark, repo, df, ["stats:rate"]).collect()
    assert sorted((r["driver_id"] or 0, r["rate"]) for r in out) == [(0, None), (99, None)]


def test_entity_columns_unchanged_and_in_order(spark, repo):
    df = spark.createDataFrame(
        pd.DataFrame({"z_label": [1.5], "event_timestamp": [minutes(1)], "driver_id": [3], "a_note": ["x"]}),
        "z_label double, event_timestamp timestamp_ntz, driver_id int, a_note string",
    )
    out = retrieval.get_historical_features(spark, repo, df, ["stats:rate", "stats_forever:rate"], full_feature_names=True)
    assert out.columns == ["z_label", "event_timestamp", "driver_id", "a_note", "stats__rate", "stats_forever__rate"]
    assert [f.dataType.simpleString() for f in out.schema.fields[:4]] == ["double", "timestamp_ntz", "int", "string"]
    assert [tuple(r) for r in out.collect()] == [(1.5, minutes(1).replace(tzinfo=None), 3, "x", 3.0, 3.0)]


def test_pandas_sql_and_delta_entity_inputs(spark, repo, tmp_path):
    naive = pd.DataFrame({"driver_id": [1], "event_timestamp": [pd.Timestamp("2026-03-01 00:04:00")]})  # UTC
    assert retrieval.get_historical_features(spark, repo, naive, ["stats:rate"]).first()["rate"] == 0.0
    write_delta(spark, naive, str(tmp_path / "ents"), "driver_id long, event_timestamp timestamp")
    assert retrieval.get_historical_features(spark, repo, str(tmp_path / "ents"), ["stats:rate"]).first()["rate"] == 0.0
    sql = "SELECT 1L AS driver_id, TIMESTAMP'2026-03-01 00:04:00' AS event_timestamp"
    assert retrieval.get_historical_features(spark, repo, sql, ["stats:rate"]).first()["rate"] == 0.0


def test_entity_rows_that_change_after_the_call_are_pinned_or_refused(spark, repo, tmp_path):
    """The plan's statistics read the entity rows at the call, the join at the action. A Delta path is
    read at the version current at the call. A DataFrame over the same table, appended to in between
    with a row later than any the plan saw, fails at the action: its feature rows after minute 4 were
    pruned by the plan, so the row would silently get the value of minute 0 instead of minute 20's."""
    path = str(tmp_path / "ents")
    schema = "driver_id long, event_timestamp timestamp"
    write_delta(spark, pd.DataFrame({"driver_id": [1], "event_timestamp": [minutes(4)]}), path, schema)
    by_path = retrieval.get_historical_features(spark, repo, path, ["stats_forever:rate"])
    by_frame = retrieval.get_historical_features(spark, repo, spark.read.format("delta").load(path),
                                                 ["stats_forever:rate"])
    spark.createDataFrame(pd.DataFrame({"driver_id": [1], "event_timestamp": [minutes(25)]}), schema).write.format(
        "delta").mode("append").save(path)
    assert [tuple(r) for r in by_path.collect()] == [(1, minutes(4).replace(tzinfo=None), 0.0)]
    with pytest.raises(Exception, match=r"the entity rows changed after get_historical_features planned the join: "
                       r"a row has event_timestamp = 2026-03-01 00:25:00.000000\+00:00, but the plan saw rows from "
                       r"2026-03-01 00:04:00.000000\+00:00 to 2026-03-01 00:04:00.000000\+00:00; the entity rows "
                       r"must be the same at the action as at the call: pass a Delta path or table name"):
        by_frame.collect()
    again = retrieval.get_historical_features(spark, repo, path, ["stats_forever:rate"])
    assert sorted(r["rate"] for r in again.collect()) == [0.0, 0.3]
    # Empty at the call: the plan saw no rows, and rows that appear later would get no features.
    empty = str(tmp_path / "empty")
    write_delta(spark, pd.DataFrame({"driver_id": [], "event_timestamp": []}), empty, schema)
    none_yet = retrieval.get_historical_features(spark, repo, spark.read.format("delta").load(empty),
                                                 ["stats_forever:rate"])
    spark.read.format("delta").load(path).write.format("delta").mode("append").save(empty)
    with pytest.raises(Exception, match=r"a row has event_timestamp = 2026-03-01 00:(04|25):00.000000\+00:00, but "
                       r"the plan saw no rows; the entity rows must be the same"):
        none_yet.collect()


def test_exact_ties_are_settled_the_same_way_whatever_the_file_layout(spark, tmp_path):
    rows = pd.DataFrame({
        "driver_id": [7] * 6, "ts": [minutes(0)] * 6, "created": [minutes(0)] * 6, "rate": [float(i) for i in range(6)],
    })
    schema = "driver_id long, ts timestamp, created timestamp, rate double"
    write_delta(spark, rows, str(tmp_path / "a"), schema)
    spark.createDataFrame(rows.iloc[::-1], schema).repartition(3).write.format("delta").save(str(tmp_path / "b"))
    answers = set()
    for name in ("a", "b"):
        repo = repo_of(view_spec("v", str(tmp_path / name), {"driver_id": "INT64"}, {"rate": "DOUBLE"}, created="created"))
        ent = pd.DataFrame({"driver_id": [7], "event_timestamp": [minutes(1)]})
        answers.add(retrieval.get_historical_features(spark, repo, ent, ["v:rate"]).first()["rate"])
    assert len(answers) == 1 and answers <= set(rows["rate"])
    # The documented rule: the greatest xxhash64 of the row's feature values (Spark's own function).
    hashes = spark.createDataFrame(rows, schema).select("rate", F.xxhash64("rate").alias("h")).collect()
    assert answers == {max(hashes, key=lambda r: r["h"])["rate"]}


def test_empty_entity_df_gives_empty_typed_result(spark, repo):
    df = spark.createDataFrame([], "driver_id long, event_timestamp timestamp")
    out = retrieval.get_historical_features(spark, repo, df, ["stats:rate"])
    assert out.columns == ["driver_id", "event_timestamp", "rate"] and out.count() == 0


def test_explain_names_the_strategy_and_bucket_choice(spark, repo):
    ent = pd.DataFrame({"driver_id": [1, 1, 2], "event_timestamp": [minutes(1), minutes(50), minutes(9)]})
    text = retrieval.prepare(spark, repo, ent, ["stats:rate"]).plan.explain()
    assert "point-in-time join of 3 entity rows" in text
    assert "windowed range join" in text and "bucket width" in text
    assert "key pruning: yes: ~2 distinct entity keys" in text
    assert "the hottest key holds ~66.67% of the entity rows" in text  # key 1: two rows of three


def test_source_by_catalog_table_name(spark, tmp_path):
    rows = pd.DataFrame({"driver_id": [5], "ts": [minutes(0)], "rate": [0.5]})
    spark.createDataFrame(rows, "driver_id long, ts timestamp, rate double").write.format("delta").option(
        "path", str(tmp_path / "t")).saveAsTable("fsspark_test_rates")
    try:
        view = view_spec("rates", "unused", {"driver_id": "INT64"}, {"rate": "DOUBLE"})
        view = dataclasses.replace(view, source=dataclasses.replace(view.source, path=None, table="fsspark_test_rates"))
        ent = pd.DataFrame({"driver_id": [5], "event_timestamp": [minutes(1)]})
        assert retrieval.get_historical_features(spark, repo_of(view), ent, ["rates:rate"]).first()["rate"] == 0.5
    finally:
        spark.sql("DROP TABLE IF EXISTS fsspark_test_rates")


def _feast_stats_view(path: str, ttl: timedelta) -> tuple[Entity, FeatureView]:
    """The module's ``stats`` rows as a Feast view (Feast objects: projections need them)."""
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = SparkSource(name="stats_src", path=path, table_format=DeltaFormat(), timestamp_field="ts",
                         created_timestamp_column="created")
    view = FeatureView(name="stats", entities=[driver], ttl=ttl, source=source,
                       schema=[Field(name="driver_id", dtype=Int64), Field(name="rate", dtype=Float64)])
    return driver, view


def test_feature_service_projections_rename_views_and_map_join_keys(spark, repo):
    """A trip has an origin and a destination driver: one view, projected twice onto other entity columns."""
    driver, stats = _feast_stats_view(repo.views["stats"].source.path, timedelta(minutes=5))
    trip = FeatureService(name="trip", features=[
        stats.with_name("origin").with_join_key_map({"driver_id": "origin_id"}),
        stats[["rate"]].with_name("dest").with_join_key_map({"driver_id": "dest_id"}),
    ])
    feast_repo = repo_from_feast(project="p", objects=[driver, stats, trip])
    ents = pd.DataFrame({"i": [0, 1, 2], "origin_id": [1, 2, 3], "dest_id": pd.array([2, 1, None], dtype="Int64"),
                         "event_timestamp": [minutes(0), minutes(10), minutes(3)]})
    # Derived by hand from the module's rows (ttl 5 minutes): origin 1 at 0 -> 0.0; dest 2 at 0 -> 2.0
    # (created 1 beats null); origin 2 at 10 -> too old; dest 1 at 10 -> 0.2 (created 30 beats 11);
    # origin 3 at 3 -> 3.0; a null dest_id -> null.
    expected = [(0.0, 2.0), (None, 0.2), (3.0, None)]
    by_name = retrieval.get_historical_features(spark, feast_repo, ents, "trip", full_feature_names=True)
    assert by_name.columns == ["i", "origin_id", "dest_id", "event_timestamp", "origin__rate", "dest__rate"]
    assert [tuple(r)[4:] for r in sorted(by_name.collect(), key=lambda r: r["i"])] == expected
    # The FeatureService object itself, also when the repo does not define it.
    bare = repo_from_feast(project="p", objects=[driver, stats])
    by_object = retrieval.get_historical_features(spark, bare, ents, trip, full_feature_names=True)
    assert [tuple(r)[4:] for r in sorted(by_object.collect(), key=lambda r: r["i"])] == expected
    with pytest.raises(FeatureNameCollisionError, match="feature view 'origin'.*feature view 'dest'"):
        retrieval.get_historical_features(spark, feast_repo, ents, "trip")
    # Two projections under one name but on different entity columns cannot both be served.
    twice = FeatureService(name="twice", features=[stats.with_join_key_map({"driver_id": "origin_id"}),
                                                    stats.with_join_key_map({"driver_id": "dest_id"})])
    with pytest.raises(InvalidFeatureRefError, match=r"^feature view 'stats' is requested twice with different "
                       r"definitions \(join keys origin_id and dest_id\); give each projection its own name"):
        retrieval.get_historical_features(spark, bare, ents, twice)
    wrong = FeatureService(name="wrong", features=[stats.with_join_key_map({"rider_id": "x"})])
    with pytest.raises(RepoError, match=r"^feature service 'wrong': join_key_map of feature view 'stats' maps "
                       r"rider_id, not join keys of the view \(its join keys: driver_id\)$"):
        repo_from_feast(project="p", objects=[driver, stats, wrong])


def test_ttl_zero_is_unlimited_and_the_only_timestamp_column_is_the_event_time(spark, repo):
    driver, stats = _feast_stats_view(repo.views["stats"].source.path, timedelta(0))
    feast_repo = repo_from_feast(project="p", objects=[driver, stats])
    assert feast_repo.views["stats"].ttl is None
    # No column named event_timestamp: the only timestamp column ("at") is the entity rows' time.
    ents = pd.DataFrame({"driver_id": [1], "at": [minutes(60 * 24 * 365)]})
    out = retrieval.get_historical_features(spark, feast_repo, ents, ["stats:rate"])
    assert [tuple(r) for r in out.collect()] == [(1, minutes(60 * 24 * 365).replace(tzinfo=None), 0.3)]


def test_join_keys_come_from_the_entities_when_the_schema_omits_them(spark, repo):
    """Feast infers a view's entity columns at `feast apply`; the engine does it without one."""
    driver, stats = _feast_stats_view(repo.views["stats"].source.path, timedelta(minutes=5))
    bare = FeatureView(name="bare", entities=[driver], ttl=stats.ttl, source=stats.batch_source,
                       schema=[Field(name="rate", dtype=Float64)])
    everyone = FeatureView(name="everyone", entities=[], source=stats.batch_source,
                           schema=[Field(name="rate", dtype=Float64)])
    rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.STRING)
    half = FeatureView(name="half", entities=[driver, rider], source=stats.batch_source,  # rider_id left out
                       schema=[Field(name="driver_id", dtype=Int64), Field(name="rate", dtype=Float64)])
    feast_repo = repo_from_feast(project="p", objects=[driver, rider, bare, everyone, half])
    assert [(k.name, k.dtype) for k in feast_repo.views["bare"].join_keys] == [("driver_id", "INT64")]
    assert [(k.name, k.dtype) for k in feast_repo.views["half"].join_keys] == [("driver_id", "INT64"),
                                                                                ("rider_id", "STRING")]
    ents = pd.DataFrame({"driver_id": [1], "event_timestamp": [minutes(3)]})
    assert retrieval.get_historical_features(spark, feast_repo, ents, ["bare:rate"]).first()["rate"] == 0.0
    with pytest.raises(NotSupportedError, match=r"^feature view 'everyone' has no entities \(a global view\)"):
        retrieval.get_historical_features(spark, feast_repo, ents, ["everyone:rate"])


def test_feature_services_of_string_refs_and_temp_view_entities(spark, repo):
    """A FeatureService of "view:feature" strings (Feast resolves them only at apply), and an entity_df
    given as the name of a temporary view (not Delta: read as it is)."""
    driver, stats = _feast_stats_view(repo.views["stats"].source.path, timedelta(minutes=5))
    feast_repo = repo_from_feast(project="p", objects=[driver, stats])
    spark.createDataFrame(pd.DataFrame({"driver_id": [1, 3], "event_timestamp": [minutes(3), minutes(3)]}),
                          "driver_id long, event_timestamp timestamp").createOrReplaceTempView("fsspark_rides")
    for service in (FeatureService(name="by_ref", features=["stats:rate"]), FeatureService(name="whole", features=["stats"])):
        out = retrieval.get_historical_features(spark, feast_repo, "fsspark_rides", service)
        assert sorted(tuple(r) for r in out.select("driver_id", "rate").collect()) == [(1, 0.0), (3, 3.0)]
    with pytest.raises(InvalidFeatureRefError, match=r"^feature service 'empty' has no features$"):
        retrieval.get_historical_features(spark, feast_repo, "fsspark_rides", FeatureService(name="empty", features=[]))


def test_time_zone_aware_pandas_times_are_instants(spark, repo):
    # 2026-02-28 19:04 in New York is 2026-03-01 00:04 UTC: minute 4, inside minute 0's ttl window.
    local = pd.Timestamp("2026-02-28 19:04:00", tz="America/New_York")
    ents = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": [local, local + pd.Timedelta(minutes=2)]})
    out = retrieval.get_historical_features(spark, repo, ents, ["stats:rate"]).collect()
    assert sorted((r["event_timestamp"], r["rate"]) for r in out) == [
        (minutes(4).replace(tzinfo=None), 0.0), (minutes(6).replace(tzinfo=None), None)]


def test_int32_keys_compare_whole_and_features_may_share_internal_names(spark, tmp_path):
    """An INT32 key against an entity column of longs: a value no int32 holds matches nothing (no
    overflow, no wrap-around onto key 1); features called c, tie or f (names inside the ranking struct) are
    ordinary features."""
    rows = pd.DataFrame({"k": [1, 2], "ts": [minutes(0)] * 2, "c": [10, 20], "tie": ["x", "y"], "f": [1.0, 2.0]})
    write_delta(spark, rows, str(tmp_path / "v"), "k int, ts timestamp, c long, tie string, f double")
    view = view_spec("v", str(tmp_path / "v"), {"k": "INT32"}, {"c": "INT64", "tie": "STRING", "f": "DOUBLE"})
    ents = spark.createDataFrame(pd.DataFrame({"k": [2**32 + 1, 2, 1], "event_timestamp": [minutes(1)] * 3}),
                                 "k long, event_timestamp timestamp")
    out = retrieval.get_historical_features(spark, repo_of(view), ents, ["v:c", "v:tie", "v:f"])
    assert sorted(tuple(r) for r in out.select("k", "c", "tie", "f").collect()) == [
        (1, 10, "x", 1.0), (2, 20, "y", 2.0), (2**32 + 1, None, None, None)]
