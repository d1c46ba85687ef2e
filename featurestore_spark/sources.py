"""Read a feature view's Delta source into the engine's normal form.

Normal form: ``__k0..__kN`` (join keys, cast to the declared type), ``__ts`` (event
time), ``__c`` (created time, null when the view has none), ``__tie`` (a hash of all the
row's feature values: the fixed, content-based rule for rows that tie on both timestamps),
then the requested features under their view names. Columns are selected by name, so Delta reads only those.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from featurestore_spark.columns import CREATED, RESERVED_FEATURE, RESERVED_FEATURE_TEXT, TIE, TS, key_col
from featurestore_spark.delta_io import read_delta
from featurestore_spark.errors import JoinKeyTypeError, MissingColumnError, NotSupportedError, TimestampTypeError
from featurestore_spark.session import check_utc
from featurestore_spark.specs import FeatureViewSpec

#: Spark types a join-key column may have, per declared Feast type: values compare exactly.
COMPATIBLE_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "INT64": (T.LongType, T.IntegerType, T.ShortType, T.ByteType),
    "INT32": (T.IntegerType, T.ShortType, T.ByteType, T.LongType),
    "STRING": (T.StringType, T.VarcharType, T.CharType),
    "BYTES": (T.BinaryType,),
}


def check_key_column(df: DataFrame, column: str, dtype: str, *, where: str, view: str) -> None:
    """Check a join-key column (of a feature table or the entity rows) against the declared type."""
    actual = df.schema[column].dataType
    if not isinstance(actual, COMPATIBLE_KEY_TYPES[dtype]):
        raise JoinKeyTypeError(column=column, where=where, actual=actual.simpleString(), declared=dtype, view=view)


def ranking(features: tuple[str, ...]) -> Column:
    """The struct whose ``max`` is the winning row (docs/semantics.md section 1.3): event time, then created time
    (null lowest), then the tie hash; the features ride along in a nested struct ``f`` (so a feature
    may be called ``ts`` or ``c``). Used by the join and by materialization."""
    return F.struct(
        F.unix_micros(F.col(TS)).alias("ts"),
        F.col(CREATED).isNotNull().alias("has_c"),
        F.unix_micros(F.col(CREATED)).alias("c"),
        F.col(TIE).alias("tie"),
        F.struct(*[F.col(f"`{f}`") for f in features]).alias("f"),
    )


def read_view(
    spark: SparkSession, view: FeatureViewSpec, features: tuple[str, ...], raw: DataFrame | None = None
) -> DataFrame:
    """The view's rows in normal form, with only ``features`` among the feature columns.

    ``raw`` is the source as already read (a time-travel snapshot, a change feed); by default the
    current version of the table is read.

    Raises:
        SourceError: the source is not a readable Delta table.
        MissingColumnError: the table lacks a key, timestamp or feature column.
        JoinKeyTypeError / TimestampTypeError: a column has a type the view cannot use.
        ConfigError: the session's time zone is not UTC.
        NotSupportedError: a feature has a name the engine reserves (``columns.RESERVED_FEATURE``).
    """
    check_utc(spark)
    for name in features:
        if RESERVED_FEATURE.fullmatch(name):
            raise NotSupportedError(
                f"feature '{name}' of feature view '{view.name}' has a name the engine reserves ({RESERVED_FEATURE_TEXT}): "
                "rename it in the view, with field_mapping from its column"
            )
    src = view.source
    if raw is None:
        raw = read_delta(spark, src.address, what=f"source of feature view '{view.name}'",
                         version=src.version)
    where = f"Delta table {src.location} (source of feature view '{view.name}')"

    def column(name: str, needed_by: str) -> str:
        physical = src.column_for(name)
        if physical not in raw.columns:
            mapped = f" (mapped from '{physical}' by field_mapping)" if physical != name else ""
            raise MissingColumnError(
                column=physical, where=where, needed_by=needed_by + mapped, available=raw.columns,
                fix="Fix the view's schema, field_mapping or source",
            )
        return physical

    selected = []
    for i, key in enumerate(view.join_keys):
        physical = column(key.name, "join key")
        check_key_column(raw, physical, key.dtype, where=where, view=view.name)
        selected.append(F.col(physical).cast(key.spark_type).alias(key_col(i)))
    for name, alias in ((src.timestamp_field, TS), (src.created_timestamp_column, CREATED)):
        if name is None:
            selected.append(F.lit(None).cast("timestamp").alias(alias))
            continue
        physical = column(name, "timestamp column")
        if not isinstance(raw.schema[physical].dataType, (T.TimestampType, T.TimestampNTZType)):
            raise TimestampTypeError(
                f"{where}: column '{physical}' has type {raw.schema[physical].dataType.simpleString()}; "
                "event and created timestamps must be timestamps"
            )
        selected.append(F.col(physical).cast("timestamp").alias(alias))
    all_features = [F.col(column(f.name, "feature column")) for f in view.features]
    selected.append(F.xxhash64(*all_features).alias(TIE))
    for name in features:
        spec = view.feature(name)
        assert spec is not None, name  # refs are resolved against the view before this
        selected.append(F.col(column(name, "feature column")).cast(spec.spark_type).alias(name))
    return raw.select(*selected)
