"""Bad input fails fast, in the call, with a message naming the culprit and the fix."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pandas as pd
import pytest

from featurestore_spark import (
    ConfigError,
    EntityInputError,
    FeatureNameCollisionError,
    InvalidFeatureRefError,
    JoinKeyTypeError,
    MissingColumnError,
    NotSupportedError,
    NullEventTimestampError,
    SourceError,
    TimestampTypeError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)
from featurestore_spark.offline import retrieval
from tests.helpers import minutes, repo_of, view_spec, write_delta


@pytest.fixture(scope="module")
def repo(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    rows = pd.DataFrame({"driver_id": [1], "ts": [minutes(0)], "rate": [0.5], "name": ["a"]})
    write_delta(spark, rows, f"{root}/drivers", "driver_id long, ts timestamp, rate double, name string")
    write_delta(spark, rows.rename(columns={"driver_id": "rider_id"}), f"{root}/riders",
                "rider_id long, ts timestamp, rate double, name string")
    write_delta(spark, rows, f"{root}/badkeys", "driver_id string, ts timestamp, rate double, name string")
    drivers = view_spec("drivers", f"{root}/drivers", {"driver_id": "INT64"}, {"rate": "DOUBLE", "name": "STRING"},
                        ttl=timedelta(days=1))
    riders = view_spec("riders", f"{root}/riders", {"rider_id": "INT64"}, {"rate": "DOUBLE"})
    missing = view_spec("missing", f"{root}/nowhere", {"driver_id": "INT64"}, {"rate": "DOUBLE"})
    bad_col = view_spec("bad_col", f"{root}/drivers", {"driver_id": "INT64"}, {"speed": "DOUBLE"})
    bad_keys = view_spec("bad_keys", f"{root}/badkeys", {"driver_id": "INT64"}, {"rate": "DOUBLE"})
    return repo_of(drivers, riders, missing, bad_col, bad_keys)


def entity(spark, **cols):
    data = {"driver_id": [1], "event_timestamp": [minutes(5)]} | cols
    return spark.createDataFrame(pd.DataFrame(data))


def run(spark, repo, entity_df, features, **kw):
    return retrieval.get_historical_features(spark, repo, entity_df, features, **kw)


def test_missing_join_key(spark, repo):
    df = spark.createDataFrame(pd.DataFrame({"customer_id": [1], "event_timestamp": [minutes(5)]}))
    with pytest.raises(MissingColumnError, match=r"entity_df lacks join key 'driver_id' \(columns: customer_id, "
                       r"event_timestamp\)\. Feature view 'drivers' joins on driver_id"):
        run(spark, repo, df, ["drivers:rate"])


def test_missing_timestamp_column(spark, repo):
    df = spark.createDataFrame(pd.DataFrame({"driver_id": [1], "when": ["2026-01-01"]}))
    with pytest.raises(MissingColumnError, match=r"entity_df lacks the event-timestamp column 'event_timestamp'.*"
                       r"Name the event-time column 'event_timestamp' and give it a timestamp type"):
        run(spark, repo, df, ["drivers:rate"])


def test_timestamp_of_wrong_type(spark, repo):
    df = spark.createDataFrame(pd.DataFrame({"driver_id": [1], "event_timestamp": ["2026-01-01"]}))
    with pytest.raises(TimestampTypeError, match=r"column 'event_timestamp' has type string; it must be a timestamp"):
        run(spark, repo, df, ["drivers:rate"])


def test_unknown_view(spark, repo):
    with pytest.raises(UnknownFeatureViewError, match=r"feature reference 'driverz:rate' names unknown feature view "
                       r"'driverz' \(views in the repo: bad_col, bad_keys, drivers, missing, riders\)"):
        run(spark, repo, entity(spark), ["driverz:rate"])


def test_unknown_feature(spark, repo):
    with pytest.raises(UnknownFeatureError, match=r"feature view 'drivers' has no feature 'speed' \(its features: "
                       r"rate, name\)"):
        run(spark, repo, entity(spark), ["drivers:speed"])


@pytest.mark.parametrize("ref", ["drivers.rate", "drivers:", ":rate", "a:b:c"])
def test_malformed_reference(spark, repo, ref):
    with pytest.raises(InvalidFeatureRefError, match="is not of the form 'view:feature'|neither a feature service"):
        run(spark, repo, entity(spark), [ref] if ref != "drivers.rate" else ref)


def test_name_collision_names_both_views(spark, repo):
    df = entity(spark, rider_id=[1])
    with pytest.raises(FeatureNameCollisionError, match=r"output column 'rate' would come from both feature view "
                       r"'drivers' and feature view 'riders'; pass full_feature_names=True"):
        run(spark, repo, df, ["drivers:rate", "riders:rate"])
    out = run(spark, repo, df, ["drivers:rate", "riders:rate"], full_feature_names=True)
    assert out.columns[-2:] == ["drivers__rate", "riders__rate"]


def test_collision_with_an_entity_column(spark, repo):
    with pytest.raises(FeatureNameCollisionError, match=r"'name' would come from both entity_df column 'name' and "
                       r"feature view 'drivers'"):
        run(spark, repo, entity(spark, name=["x"]), ["drivers:name"])


def test_collisions_ignore_case_as_spark_does(spark, repo):
    with pytest.raises(FeatureNameCollisionError, match=r"'rate' would come from both entity_df column 'Rate' and "
                       r"feature view 'drivers'"):
        run(spark, repo, entity(spark, Rate=[1.0]), ["drivers:rate"])


def test_names_the_join_reserves(spark, repo, tmp_path):
    with pytest.raises(NotSupportedError, match=r"^entity_df column '__f0' has a name the join reserves \(__f<n>\): "
                       r"rename it$"):
        run(spark, repo, entity(spark, __f0=[1]), ["drivers:rate"])
    rows = pd.DataFrame({"driver_id": [1], "ts": [minutes(0)], "__tie": [0.5], "__LO": [1.5]})
    write_delta(spark, rows, str(tmp_path / "v"), "driver_id long, ts timestamp, __tie double, __LO double")
    view = view_spec("v", str(tmp_path / "v"), {"driver_id": "INT64"}, {"__tie": "DOUBLE", "__LO": "DOUBLE"},
                     ttl=timedelta(days=1))
    for feature in ("__tie", "__LO"):
        with pytest.raises(NotSupportedError, match=rf"^feature '{feature}' of feature view 'v' has a name the "
                           r"engine reserves \(__k<n>, __ts, __c, __tie, __lo, __hi\): rename it"):
            run(spark, repo_of(view), entity(spark), [f"v:{feature}"])


def test_session_time_zone_must_be_utc(spark, repo):
    try:
        spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
        with pytest.raises(ConfigError, match=r"^the Spark session's time zone \(spark.sql.session.timeZone\) is "
                           r"Europe/Berlin; the engine compares timestamps as UTC instants: "
                           r"spark.conf.set\('spark.sql.session.timeZone', 'UTC'\) first"):
            run(spark, repo, entity(spark), ["drivers:rate"])
        spark.conf.set("spark.sql.session.timeZone", "Etc/UTC")  # another name of UTC is fine
        assert run(spark, repo, entity(spark), ["drivers:rate"]).first()["rate"] == 0.5
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_join_key_type_mismatch_in_entity_df(spark, repo):
    df = spark.createDataFrame(pd.DataFrame({"driver_id": ["1"], "event_timestamp": [minutes(5)]}))
    with pytest.raises(JoinKeyTypeError, match=r"join key 'driver_id' in entity_df has type string, but feature view "
                       r"'drivers' declares it INT64; cast the column"):
        run(spark, repo, df, ["drivers:rate"])


def test_join_key_type_mismatch_in_source(spark, repo):
    with pytest.raises(JoinKeyTypeError, match=r"join key 'driver_id' in Delta table .*badkeys \(source of feature "
                       r"view 'bad_keys'\) has type string, but feature view 'bad_keys' declares it INT64"):
        run(spark, repo, entity(spark), ["bad_keys:rate"])


def test_null_event_timestamps_are_counted(spark, repo):
    df = spark.createDataFrame(
        pd.DataFrame({"driver_id": [1, 2, 3], "event_timestamp": [minutes(1), None, None]}),
        "driver_id long, event_timestamp timestamp",
    )
    with pytest.raises(NullEventTimestampError, match=r"entity_df has 2 row\(s\) with a null 'event_timestamp'"):
        run(spark, repo, df, ["drivers:rate"])


def test_source_that_does_not_exist_or_is_not_a_delta_table(spark, repo, tmp_path):
    with pytest.raises(SourceError, match=r"^source of feature view 'missing': '.*nowhere' does not exist; check the "
                       r"path$"):
        run(spark, repo, entity(spark), ["missing:rate"])
    spark.range(2).write.parquet(str(tmp_path / "parquet"))
    view = dataclasses.replace(repo.views["missing"], name="parquet_view")
    view = dataclasses.replace(view, source=dataclasses.replace(view.source, path=str(tmp_path / "parquet")))
    with pytest.raises(SourceError, match=r"source of feature view 'parquet_view': '.*parquet' is not a Delta table "
                       r"\(no _delta_log there\)"):
        run(spark, repo_of(*repo.views.values(), view), entity(spark), ["parquet_view:rate"])
    with pytest.raises(SourceError, match=r"^entity_df: table 'fsspark_no_such_table' does not exist \(database "
                       r"default\); check the name, or give a path$"):
        run(spark, repo, "fsspark_no_such_table", ["drivers:rate"])


def test_entity_df_of_an_unknown_kind(spark, repo):
    with pytest.raises(EntityInputError, match=r"^entity_df must be a pyspark DataFrame, a pandas DataFrame, a SQL "
                       r"query or a Delta path/table name, not list; convert it, e.g. pd.DataFrame\(rows\)$"):
        run(spark, repo, [{"driver_id": 1}], ["drivers:rate"])


def test_catalog_table_that_is_not_delta(spark, repo, tmp_path):
    spark.range(1).write.format("parquet").option("path", str(tmp_path / "p")).saveAsTable("fsspark_test_parquet")
    try:
        view = dataclasses.replace(repo.views["drivers"], name="parquet_view")
        view = dataclasses.replace(view, source=dataclasses.replace(view.source, path=None, table="fsspark_test_parquet"))
        with pytest.raises(SourceError, match=r"^source of feature view 'parquet_view': table 'fsspark_test_parquet' "
                           r"is not a Delta table; convert it \(CONVERT TO DELTA\) or point the source at a Delta table$"):
            run(spark, repo_of(*repo.views.values(), view), entity(spark), ["parquet_view:rate"])
    finally:
        spark.sql("DROP TABLE IF EXISTS fsspark_test_parquet")


def test_source_lacking_a_feature_column(spark, repo):
    with pytest.raises(MissingColumnError, match=r"Delta table .*drivers \(source of feature view 'bad_col'\) lacks "
                       r"feature column 'speed'"):
        run(spark, repo, entity(spark), ["bad_col:speed"])


def test_entity_path_that_is_not_delta(spark, repo, tmp_path):
    with pytest.raises(SourceError, match=r"entity_df: '.*' is not a Delta table"):
        run(spark, repo, str(tmp_path), ["drivers:rate"])


def test_errors_come_before_any_spark_job(spark, repo):
    """Name and schema errors are raised without running a job (the statistics run last)."""
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    with pytest.raises(UnknownFeatureError):
        run(spark, repo, entity(spark), ["drivers:speed"])
    with pytest.raises(JoinKeyTypeError):
        run(spark, repo, entity(spark), ["bad_keys:rate"])
    assert set(tracker.getJobIdsForGroup()) == before
