"""``FeatureStore``: the facade users touch: a Feast repo, a Spark session, the engine."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from featurestore_spark import runtime
from featurestore_spark.errors import ConfigError, UnknownFeatureViewError
from featurestore_spark.kafka_source import KafkaSource
from featurestore_spark.offline import retrieval
from featurestore_spark.online.watermarks import default_state_path
from featurestore_spark.repo import load_repo
from featurestore_spark.session import build_session
from featurestore_spark.specs import RepoSpec
from featurestore_spark.training import build as training
from featurestore_spark.training import catalog as training_catalog


class FeatureStore:
    """A Feast feature repo served by Spark and Delta Lake.

    Args:
        repo_path: folder with ``feature_store.yaml`` and the Feast definitions.
        spark: the session to use; when None, one is built from ``profile``.
        profile: Spark profile (``build_session``) used when ``spark`` is None.
        catalog: Delta table (path or name) listing the training sets built; default
            ``$FSSPARK_CATALOG``, else ``<repo_path>/data/training_set_catalog``.

    Example:
        >>> store = FeatureStore(repo_path="feature_repo")  # doctest: +SKIP
        >>> df = store.get_historical_features(                                # doctest: +SKIP
        ...     entity_df="feature_repo/data/entities",
        ...     features=["driver_hourly_stats:conv_rate", "customer_profile:segment"],
        ... )
    """

    def __init__(
        self, repo_path: str | Path = "feature_repo", spark: SparkSession | None = None, profile: str = "local",
        catalog: str | None = None,
        state_path: str | None = None,
    ):
        self.repo: RepoSpec = load_repo(repo_path)
        self.spark = spark if spark is not None else build_session(profile)
        self._catalog = catalog or os.environ.get("FSSPARK_CATALOG")
        #: Delta table of materialization watermarks (see ``online.watermarks``).
        self.state_path = state_path or os.environ.get("FSSPARK_STATE_PATH") or default_state_path(self.repo)

    @property
    def catalog(self) -> str:
        """The training-set catalog's location. The default, under the repo folder, is on the driver's
        disk: on a cluster, set it (``catalog=`` or ``$FSSPARK_CATALOG``) to shared storage."""
        if self._catalog:
            return self._catalog
        if not runtime.master(self.spark).startswith("local"):
            raise ConfigError(
                "no training-set catalog set: on a cluster the default (<repo>/data/training_set_catalog, on the "
                "driver's disk) cannot hold a Delta table; pass FeatureStore(catalog=...), --catalog or set "
                "$FSSPARK_CATALOG to a shared path or a table name"
            )
        return str(Path(self.repo.repo_path) / "data" / "training_set_catalog")

    @property
    def project(self) -> str:
        return self.repo.project

    def get_historical_features(
        self,
        entity_df: object,
        features: object,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> DataFrame:
        """Point-in-time-correct features for every entity row (docs/semantics.md section 1).

        Args:
            entity_df: pyspark or pandas DataFrame, SQL query, or Delta path / table name, with the
                join keys and an ``event_timestamp`` (or its only timestamp) column.
            features: "view:feature" references, a FeatureService, or a service's name.
            full_feature_names: name outputs "view__feature" instead of "feature".
            filter_by_created_timestamp: only use rows whose created timestamp is <= the entity time.

        Returns:
            A lazy DataFrame: the entity columns unchanged, then the features in request order.
            Statistics for the plan (one aggregate and one sample per key set) run in this call.
        """
        return retrieval.get_historical_features(
            self.spark, self.repo, entity_df, features,
            full_feature_names=full_feature_names, filter_by_created_timestamp=filter_by_created_timestamp,
        )

    def materialize(
        self, start_date: datetime, end_date: datetime, feature_views: list[str] | None = None, *,
        min_replicas: int = 0,
    ) -> list:
        """Push, per view and entity key, the latest row with start_date <= ts <= end_date to Redis.

        Settings come from feature_store.yaml's ``online_store`` (type redis, redis_type redis or
        redis_cluster). The server is pinged before any Spark work; values are written only if newer
        than what Redis holds. Successful pushes are recorded in the Feast registry when there is one.
        A server that restarts or fails over during a push gets every key again; with
        ``min_replicas``, keys count as written only once that many replicas acknowledged them.

        Returns:
            One ``PushReport`` (rows, written, skipped, failed) per view. A report with failed > 0
            (``not report.ok``) means keys were not written: run the same call again.
        """
        from featurestore_spark.online.incremental import record_in_feast_registry
        from featurestore_spark.online.materialize import materialize_view

        settings, names = self._online(feature_views)
        reports = [
            materialize_view(self.spark, self.repo, self.repo.views[n], settings, start_date, end_date,
                             min_replicas=min_replicas)
            for n in names
        ]
        record_in_feast_registry(self.repo, reports)
        return reports

    def materialize_incremental(
        self, end_date: datetime, feature_views: list[str] | None = None, *, min_replicas: int = 0,
    ) -> list:
        """Push what changed since each view's last incremental run, up to end_date (docs/semantics.md section 3.3).

        Rows appended to Delta late, with old event timestamps, are found through the Delta change
        data feed (``delta.enableChangeDataFeed``); without it the view's whole ttl window is pushed
        again (the report's ``source`` says which). Watermarks live in ``self.state_path``.

        Returns:
            One ``PushReport`` per view; a view's watermark advances only when nothing failed.

        Example:
            >>> store.materialize_incremental(datetime.now(timezone.utc))  # doctest: +SKIP
        """
        from featurestore_spark.online.incremental import materialize_view_incremental, record_in_feast_registry

        settings, names = self._online(feature_views)
        reports = [
            materialize_view_incremental(self.spark, self.repo, self.repo.views[n], settings, end_date,
                                         self.state_path, min_replicas=min_replicas)
            for n in names
        ]
        record_in_feast_registry(self.repo, reports)
        return reports

    def freshness(self, feature_views: list[str] | None = None, now: datetime | None = None) -> list:
        """How new each view's offline rows are, and how far Redis lags behind them (no Redis needed).

        Per view (default: every view of the repo): the newest event time in its Delta source, its age
        at ``now`` (default: the current time) against the view's ttl (``stale``), and the last
        successful ``materialize_incremental`` of it: the time and source version it reached
        (``behind`` when Delta has more). One Spark job reads the newest times of all views.

        Returns:
            One ``Freshness`` per view; ``summary()`` gives a line for logs.
        """
        from featurestore_spark.freshness import freshness

        return freshness(self.spark, self.repo, self.views(feature_views or list(self.repo.views)), self.state_path, now)

    def ingest_stream(
        self, feature_view: str, stream: DataFrame | KafkaSource, checkpoint: str, *, push_online: bool = True,
        trigger: dict | None = None, query_name: str | None = None, min_replicas: int = 0,
    ):  # -> pyspark.sql.streaming.StreamingQuery
        """Start a streaming query that appends ``stream`` to the view's Delta source and pushes each
        micro-batch's newest values per key to Redis (online views, unless ``push_online=False``).

        ``stream`` is a streaming DataFrame with the source table's columns (join keys, event and
        created timestamps, features), or a ``KafkaSource``: a topic whose records' values (JSON or
        Avro) hold those columns; records that cannot be read go to the view's dead-letter table
        (``<source>_dead_letters``) with the reason, and the stream goes on. Columns are checked before
        the query starts, and the Redis server is pinged. Appends are exactly-once (a batch run again is
        not appended twice) and pushes are newer-wins, so a restart from ``checkpoint`` loses and
        duplicates nothing.

        Example:
            >>> q = store.ingest_stream("driver_hourly_stats", spark.readStream.table("events"),
            ...                         "/chk/driver_hourly_stats")  # doctest: +SKIP
            >>> q = store.ingest_stream("driver_hourly_stats", KafkaSource("127.0.0.1:9092", "driver_stats"),
            ...                         "/chk/driver_hourly_stats")  # doctest: +SKIP
            >>> q.awaitTermination()  # doctest: +SKIP
        """
        from featurestore_spark.delta_io import read_delta
        from featurestore_spark.ingest import ingest_stream
        from featurestore_spark.kafka_source import decoder_for
        from featurestore_spark.online.settings import redis_settings

        view = self.views([feature_view])[0]
        settings = None
        if push_online and view.online:
            settings = redis_settings(dict(self.repo.online_store))
            settings.check()
        decoder = None
        if isinstance(stream, KafkaSource):  # records are decoded into the source table's columns
            table = read_delta(self.spark, view.source.address, what=f"source of feature view '{view.name}'")
            decoder = decoder_for(view, table.schema, stream)
            stream = stream.read(self.spark)
        return ingest_stream(self.spark, self.repo, view, stream, checkpoint, settings, trigger=trigger,
                             query_name=query_name, min_replicas=min_replicas, decoder=decoder)

    def _online(self, feature_views: list[str] | None):
        """The Redis settings (server checked) and the views to push."""
        from featurestore_spark.online.settings import redis_settings

        settings = redis_settings(dict(self.repo.online_store))
        names = feature_views or [v.name for v in self.repo.views.values() if v.online]
        self.views(names)
        settings.check()
        return settings, names

    def views(self, names: list[str]) -> list:
        """The views of these names, in order (``FeatureViewSpec``).

        Raises:
            UnknownFeatureViewError: a name the repo does not define (the first, with the known ones).
        """
        unknown = [n for n in names if n not in self.repo.views]
        if unknown:
            raise UnknownFeatureViewError(view=unknown[0], ref=unknown[0], known=self.repo.views)
        return [self.repo.views[n] for n in names]

    def explain_historical_features(self, entity_df: object, features: object, full_feature_names: bool = False) -> str:
        """What ``get_historical_features`` would do with these inputs, and why (runs the statistics only)."""
        return retrieval.prepare(self.spark, self.repo, entity_df, features, full_feature_names).plan.explain()

    def create_training_set(self, request: object, progress: training.Progress | None = None) -> training.TrainingSetResult:
        """Build a training set from a request and record its manifest.

        Args:
            request: a ``TrainingSetRequest``, a dict of the same shape, or a YAML / JSON file path.
            progress: called with a line per build step (e.g. ``print``).

        Returns:
            The output, its Delta version, rows in and out, seconds and the manifest.

        Raises:
            RequestError, OutputExistsError and the errors of ``get_historical_features``: before any
            Spark job. The write is one Delta commit: a failed build leaves the output as it was.

        Example:
            >>> result = store.create_training_set("requests/ride_ranking.yaml")  # doctest: +SKIP
            >>> print(result.summary())                                           # doctest: +SKIP
            training set ride_ranking: 2,000 rows in 14.2 s -> /tmp/ts/ride_ranking (Delta version 0)
        """
        return training.create_training_set(self.spark, self.repo, request, catalog=self.catalog, progress=progress)

    def reproduce_training_set(
        self, source: str, output: object, version: int | None = None, progress: training.Progress | None = None,
    ) -> training.TrainingSetResult:
        """Rebuild a training set into ``output`` from its manifest: a ``.json`` file or the training-set table
        (its latest build, or the build that wrote ``version``). Sources are read at their recorded versions."""
        return training.reproduce_training_set(
            self.spark, self.repo, source, output, catalog=self.catalog, version=version, progress=progress
        )

    def training_sets(self, name: str | None = None) -> list[dict]:
        """Manifests of the training sets built (all, or one name's builds), newest first."""
        return training_catalog.builds(self.spark, self.catalog, name)
