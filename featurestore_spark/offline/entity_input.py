"""Turn the many shapes of ``entity_df`` into one Spark DataFrame, and check it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from featurestore_spark.delta_io import latest_version, read_delta
from featurestore_spark.errors import EntityInputError, MissingColumnError, TimestampTypeError
from featurestore_spark.sources import check_key_column
from featurestore_spark.specs import FeatureViewSpec

EVENT_TIMESTAMP = "event_timestamp"
_SQL = re.compile(r"^\s*(select|with|\()", re.IGNORECASE)


@dataclass(frozen=True)
class EntityInput:
    """A normalised entity dataframe and the name of its event-timestamp column."""

    df: DataFrame
    timestamp_column: str


def read_entity_df(spark: SparkSession, entity_df: object) -> DataFrame:
    """Read ``entity_df`` (Spark DataFrame, pandas DataFrame, SQL text, Delta path or table name).

    Naive pandas datetimes are read as UTC instants; a Delta table at its current version.
    """
    if isinstance(entity_df, DataFrame):
        return entity_df
    if isinstance(entity_df, pd.DataFrame):
        return spark.createDataFrame(_pandas_as_utc(entity_df))
    if isinstance(entity_df, str):
        if _SQL.match(entity_df):
            return spark.sql(entity_df)
        return _pinned(spark, entity_df, read_delta(spark, entity_df, what="entity_df", any_table=True))
    raise EntityInputError(
        f"entity_df must be a pyspark DataFrame, a pandas DataFrame, a SQL query or a Delta path/table name, "
        f"not {type(entity_df).__name__}; convert it, e.g. pd.DataFrame(rows)"
    )


def _pinned(spark: SparkSession, location: str, df: DataFrame) -> DataFrame:
    """The Delta table at ``location`` at its current version: the plan's statistics and the join must
    read the same rows, even if the table is appended to between the call and the action that runs the
    join. ``df`` itself for a catalog table that is not Delta (it has no versions)."""
    try:
        version = latest_version(spark, location, what="entity_df")
    except AnalysisException:
        return df
    return read_delta(spark, location, what="entity_df", version=version)


def _pandas_as_utc(pdf: pd.DataFrame) -> pd.DataFrame:
    out = pdf.copy()
    for name in out.columns:
        col = out[name]
        if pd.api.types.is_datetime64_any_dtype(col) and getattr(col.dt, "tz", None) is None:
            out[name] = col.dt.tz_localize("UTC")
    return out


def find_timestamp_column(df: DataFrame) -> str:
    """``event_timestamp`` if present, else the only timestamp column."""
    if EVENT_TIMESTAMP in df.columns:
        return EVENT_TIMESTAMP
    stamps = [f.name for f in df.schema.fields if isinstance(f.dataType, (T.TimestampType, T.TimestampNTZType))]
    if len(stamps) == 1:
        return stamps[0]
    raise MissingColumnError(
        column=EVENT_TIMESTAMP,
        where="entity_df",
        needed_by="the event-timestamp column",
        available=df.columns,
        fix=(
            "Name the event-time column 'event_timestamp'"
            + (f" (timestamp columns found: {', '.join(stamps)})" if stamps else " and give it a timestamp type")
        ),
    )


def check_entity_df(df: DataFrame, views: list[FeatureViewSpec]) -> EntityInput:
    """Check the columns and types ``views`` need; no Spark job runs here."""
    ts = find_timestamp_column(df)
    ts_type = df.schema[ts].dataType
    if not isinstance(ts_type, (T.TimestampType, T.TimestampNTZType)):
        raise TimestampTypeError(
            f"entity_df column '{ts}' has type {ts_type.simpleString()}; it must be a timestamp: "
            f"cast it, e.g. F.to_timestamp('{ts}'), or to_timestamp({ts}) in SQL"
        )
    fields = {f.name: f.dataType for f in df.schema.fields}
    for view in views:
        for key in view.join_keys:
            if key.name not in fields:
                raise MissingColumnError(
                    column=key.name,
                    where="entity_df",
                    needed_by="join key",
                    available=df.columns,
                    fix=f"Feature view '{view.name}' joins on {', '.join(view.join_key_names)}",
                )
            check_key_column(df, key.name, key.dtype, where="entity_df", view=view.name)
    return EntityInput(df=df, timestamp_column=ts)
