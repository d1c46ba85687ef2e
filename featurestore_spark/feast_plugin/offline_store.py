"""A Feast offline store whose point-in-time join and reads are this engine's, over Delta tables.

``offline_store: type: featurestore_spark.feast_plugin.DeltaOfflineStore`` in feature_store.yaml.
The read methods return a ``DeltaRetrievalJob`` around a lazy Spark DataFrame: nothing reaches the
driver unless the caller asks for pandas or Arrow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import FeatureView, OnDemandFeatureView
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SavedDatasetSparkStorage, SparkSource
from feast.infra.offline_stores.offline_store import OfflineStore, RetrievalJob, RetrievalMetadata
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.table_format import DeltaFormat
from pydantic import StrictStr
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurestore_spark.columns import TS, key_col
from featurestore_spark.errors import ConfigError, MissingColumnError, NotSupportedError
from featurestore_spark.feast_plugin._common import repo_spec, spark_session
from featurestore_spark.offline import retrieval
from featurestore_spark.offline.entity_input import read_delta
from featurestore_spark.repo import delta_source
from featurestore_spark.sources import ranking, read_view
from featurestore_spark.specs import SPARK_TYPES, FeatureViewSpec, FieldSpec, SourceSpec
from featurestore_spark.training import output
from featurestore_spark.training.request import Output

#: Feast value type of a Spark column type, for reads that get only column names from Feast.
_FEAST_TYPE_OF: dict[str, str] = {spark: feast for feast, spark in SPARK_TYPES.items()}


class DeltaOfflineStoreConfig(FeastConfigBaseModel):
    """``offline_store`` settings. Unknown keys are errors (Feast's ``extra="forbid"``)."""

    type: StrictStr = "featurestore_spark.feast_plugin.DeltaOfflineStore"
    """The offline store class, as Feast imports it."""

    profile: StrictStr = "local"
    """Engine Spark profile used to build a session when none is active (the feast CLI)."""

    spark_conf: dict[str, str] | None = None
    """Spark settings applied over the profile when a session is built (as Feast's Spark store's)."""


class DeltaRetrievalJob(RetrievalJob):
    """A lazy Spark DataFrame that Feast can turn into pandas, Arrow or a saved Delta dataset.

    Args:
        df: the result, not yet computed.
        full_feature_names: whether features are named ``view__feature``.
        metadata: what Feast records for saved datasets (features, keys, event-time range).
    """

    def __init__(self, df: DataFrame, *, full_feature_names: bool = False, metadata: RetrievalMetadata | None = None):
        super().__init__()
        self._df = df
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def to_spark_df(self) -> DataFrame:
        """The result as a lazy Spark DataFrame (no Spark job runs here)."""
        return self._df

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._df.toPandas()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._df.toArrow()

    def persist(self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        """Write the result as a Delta table, in one Delta commit (readers see all of it or nothing).

        Args:
            storage: ``SavedDatasetSparkStorage(path=..., table_format=DeltaFormat())`` or ``(table=...)``.
            allow_overwrite: replace an existing table (as a new Delta version); else an existing one is an error.

        Raises:
            FileExistsError: the table exists and ``allow_overwrite`` is False, or a folder of files that are
                not a Delta table is at the path (``OutputExistsError``).
            ConcurrentWriteError: another writer created or changed the table while this one wrote.
            ConfigError: the storage is not a Delta path or a catalog table.
        """
        if not isinstance(storage, SavedDatasetSparkStorage):
            raise ConfigError(
                f"persist got a {type(storage).__name__}; the featurestore_spark plugin saves Delta tables: pass "
                "SavedDatasetSparkStorage(path=..., table_format=DeltaFormat()) or SavedDatasetSparkStorage(table=...)"
            )
        options = storage.spark_options
        if options.path and not isinstance(options.table_format, DeltaFormat):
            raise ConfigError(
                f"persist to '{options.path}' needs table_format=DeltaFormat() (the dataset is written as Delta "
                "and read back as Delta): SavedDatasetSparkStorage(path=..., table_format=DeltaFormat())"
            )
        if not options.path and not options.table:
            raise ConfigError("persist needs SavedDatasetSparkStorage(path=...) or (table=...)")
        spark = self._df.sparkSession
        exists = (
            _is_delta_table(spark, options.path) if options.path else spark.catalog.tableExists(options.table)
        )
        if exists and not allow_overwrite:
            raise FileExistsError(
                f"saved dataset location {options.path or options.table} already holds a table; pass "
                "allow_overwrite=True to replace it (the old version stays readable by Delta time travel)"
            )
        # The training-set output rules: no Delta table beside a folder of other files; a table another
        # writer creates after the check above makes this write a ConcurrentWriteError.
        out = Output(path=options.path or None, table=None if options.path else options.table,
                     mode="overwrite" if allow_overwrite else "error")
        output.check_output(spark, out.model_copy(update={"mode": "overwrite"}))
        output.write(spark, self._df, out)


def _is_delta_table(spark: Any, path: str) -> bool:
    from featurestore_spark import delta_io

    # A saved dataset's path is always a path, even "ds" (delta_io would take that for a table name).
    return delta_io.is_delta_table(spark, path if delta_io.is_path(path) else f"./{path}")


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


class DeltaOfflineStore(OfflineStore):
    """Feast's offline store interface on this engine (see the module docstring)."""

    supports_filter_by_created_timestamp = True

    def validate_data_source(self, config: RepoConfig, data_source: DataSource) -> None:
        """Check, without starting Spark, that a source is a Delta table (``feast apply`` calls this).

        Whether the table exists is checked at its first read, with a ``SourceError`` naming it.
        """
        delta_source(data_source, owner=f"data source '{data_source.name}'")

    def get_table_column_names_and_types_from_data_source(
        self, config: RepoConfig, data_source: DataSource
    ) -> list[tuple[str, str]]:
        """The Delta table's columns and Spark types (Feast's schema inference calls this)."""
        src = delta_source(data_source, owner=f"data source '{data_source.name}'")
        df = read_delta(spark_session(config), src.path or src.table, what=f"data source '{src.name}'")
        return [(f.name, f.dataType.simpleString()) for f in df.schema.fields]

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: object,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> DeltaRetrievalJob:
        """The engine's point-in-time join (docs/semantics.md section 1) for Feast's request.

        Names, sources and columns are checked and the join's statistics gathered here; the join
        itself runs when the job's result is asked for.
        """
        if entity_df is None:
            raise NotSupportedError(
                "get_historical_features without an entity_df (start_date/end_date retrieval) is not supported "
                "by the featurestore_spark plugin: pass an entity_df with the join keys and event_timestamp"
            )
        names = {v.projection.name_to_use() for v in feature_views}
        on_demand = {v.name for v in registry.list_on_demand_feature_views(project, allow_cache=True)}
        for ref in feature_refs:
            view_name = ref.split(":")[0]
            if view_name in on_demand:
                raise NotSupportedError(
                    f"feature '{ref}' comes from on-demand feature view '{view_name}', which the featurestore_spark "
                    "plugin does not compute: request its source features and apply the transformation to the result"
                )
            if view_name not in names:
                raise NotSupportedError(
                    f"feature reference '{ref}' does not name one of the feature views Feast passed "
                    f"({', '.join(sorted(names))}); versioned references (view@vN) are not supported by the plugin"
                )
        repo = repo_spec(config, registry, project, feature_views)
        spark = spark_session(config)
        prepared = retrieval.prepare(spark, repo, entity_df, list(feature_refs), full_feature_names)
        df = retrieval.join(prepared, filter_by_created_timestamp=filter_by_created_timestamp)
        plan, ts = prepared.plan, prepared.entity.timestamp_column
        metadata = RetrievalMetadata(
            features=list(feature_refs),
            keys=[c for c in prepared.entity.df.columns if c != ts],
            min_event_timestamp=_from_micros(plan.min_us),
            max_event_timestamp=_from_micros(plan.max_us),
        )
        return DeltaRetrievalJob(df, full_feature_names=full_feature_names, metadata=metadata)

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> DeltaRetrievalJob:
        """Rows with start_date <= ts <= end_date (either bound optional), columns named as Feast's Spark store.

        Column names are the source's; features come out renamed by the source's field_mapping.
        An empty ``feature_name_columns`` means every column.
        """
        src = delta_source(data_source, owner=f"data source '{data_source.name}'")
        location = src.path or src.table
        df = read_delta(spark_session(config), location, what=f"data source '{src.name}'")
        columns = [*join_key_columns, *feature_name_columns, timestamp_field]
        if created_timestamp_column:
            columns.append(created_timestamp_column)
        _require(df, columns, location)
        df = _in_range(df, timestamp_field, start_date, end_date)
        if not feature_name_columns:
            return DeltaRetrievalJob(df)
        mapping = dict(data_source.field_mapping)
        return DeltaRetrievalJob(df.select(*[F.col(f"`{c}`").alias(mapping.get(c, c)) for c in columns]))

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> DeltaRetrievalJob:
        """Per join key, the row with start_date <= ts <= end_date that wins as in the join and materialization:
        latest event time, then latest created time (null lowest), then the engine's fixed tie rule."""
        src = delta_source(data_source, owner=f"data source '{data_source.name}'")
        spark = spark_session(config)
        raw = read_delta(spark, src.path or src.table, what=f"data source '{src.name}'")
        view = _adhoc_view(raw, src, join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        features = tuple(f.name for f in view.features)
        rows = read_view(spark, view, features).where(F.col(TS).between(F.lit(_utc(start_date)), F.lit(_utc(end_date))))
        keys = [key_col(i) for i in range(len(view.join_keys))]
        best = rows.groupBy(*keys).agg(F.max(ranking(features)).alias("w"))
        mapping = dict(data_source.field_mapping)
        out = [F.col(k).alias(spec.name) for k, spec in zip(keys, view.join_keys)]
        out += [F.col("w").getField("f").getField(f).alias(mapping.get(f, f)) for f in features]
        out.append(F.timestamp_micros(F.col("w.ts")).alias(mapping.get(timestamp_field, timestamp_field)))
        if created_timestamp_column:
            created = F.when(F.col("w.has_c"), F.timestamp_micros(F.col("w.c")))
            out.append(created.alias(mapping.get(created_timestamp_column, created_timestamp_column)))
        return DeltaRetrievalJob(best.select(*out))

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Append ``table`` to the view's Delta source in one Delta commit, cast to the table's column types.

        Raises:
            MissingColumnError: ``table`` lacks a column of the Delta table, or has one the Delta table lacks.
        """
        src = delta_source(feature_view.batch_source, owner=f"feature view '{feature_view.name}'")
        spark = spark_session(config)
        location = src.path or src.table
        target = read_delta(spark, location, what=f"source of feature view '{feature_view.name}'")
        where = f"the table written to feature view '{feature_view.name}'"
        for column in target.columns:
            if column not in table.column_names:
                raise MissingColumnError(column=column, where=where, needed_by="column of the Delta source",
                                         available=table.column_names, fix="Write every column of the source")
        extra = [c for c in table.column_names if c not in target.columns]
        if extra:
            raise MissingColumnError(column=extra[0], where=f"Delta table {location}", needed_by=f"column of {where}",
                                     available=target.columns, fix="Drop it or add it to the Delta table first")
        batch = spark.createDataFrame(table)
        batch = batch.select(*[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in target.schema.fields])
        writer = batch.write.format("delta").mode("append")
        if src.path:
            writer.save(src.path)
        else:
            writer.saveAsTable(src.table)
        if progress:
            progress(table.num_rows)


def _from_micros(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def _require(df: DataFrame, columns: list[str], location: str) -> None:
    for column in columns:
        if column not in df.columns:
            raise MissingColumnError(column=column, where=f"Delta table {location}", needed_by="column",
                                     available=df.columns, fix="Fix the feature view's schema or its source")


def _in_range(df: DataFrame, ts: str, start: datetime | None, end: datetime | None) -> DataFrame:
    if start is not None:
        df = df.where(F.col(f"`{ts}`") >= F.lit(_utc(start)))
    if end is not None:
        df = df.where(F.col(f"`{ts}`") <= F.lit(_utc(end)))
    return df


def _adhoc_view(
    raw: DataFrame, src: SparkSource, keys: list[str], features: list[str], ts: str, created: str | None,
) -> FeatureViewSpec:
    """A view spec over source columns named by Feast (types read from the Delta schema)."""
    location = src.path or src.table
    _require(raw, [*keys, *features, ts, *([created] if created else [])], location)

    def field(name: str) -> FieldSpec:
        spark_type = raw.schema[name].dataType.simpleString()
        if spark_type not in _FEAST_TYPE_OF:
            raise NotSupportedError(
                f"column '{name}' of Delta table {location} has type {spark_type}, which the engine does not "
                f"read (supported: {', '.join(_FEAST_TYPE_OF)})"
            )
        return FieldSpec(name=name, dtype=_FEAST_TYPE_OF[spark_type])

    source = SourceSpec(name=src.name, path=src.path or None, table=None if src.path else src.table,
                        timestamp_field=ts, created_timestamp_column=created)
    return FeatureViewSpec(name=src.name, join_keys=tuple(field(k) for k in keys),
                           features=tuple(field(f) for f in features), source=source)
