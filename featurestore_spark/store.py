"""``FeatureStore``: the facade users touch: a Feast repo, a Spark session, the engine."""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark.offline import entity_input, plan, refs, sources
from featurestore_spark.offline.pit_join import point_in_time_join
from featurestore_spark.repo import load_repo
from featurestore_spark.session import build_session
from featurestore_spark.specs import RepoSpec

log = logging.getLogger(__name__)


class FeatureStore:
    """A Feast feature repo served by Spark and Delta Lake.

    Args:
        repo_path: folder with ``feature_store.yaml`` and the Feast definitions.
        spark: the session to use; when None, one is built from ``profile``.
        profile: Spark profile in ``conf/`` used when ``spark`` is None.

    Example:
        >>> store = FeatureStore(repo_path="feature_repo")  # doctest: +SKIP
        >>> df = store.get_historical_features(                                # doctest: +SKIP
        ...     entity_df="feature_repo/data/entities",
        ...     features=["driver_hourly_stats:conv_rate", "customer_profile:segment"],
        ... )
    """

    def __init__(self, repo_path: str | Path = "feature_repo", spark: SparkSession | None = None, profile: str = "local"):
        self.repo: RepoSpec = load_repo(repo_path)
        self.spark = spark if spark is not None else build_session(profile)

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
        """Point-in-time-correct features for every entity row (SEMANTICS.md section 1).

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
        entity, requests, join_plan, frames = self._prepare(entity_df, features, full_feature_names)
        log.info("%s", join_plan.explain())
        if join_plan.entity_rows == 0:
            return entity.df.select(
                "*", *[F.lit(None).cast(r.view.feature(f).spark_type).alias(n)  # type: ignore[union-attr]
                       for r in requests for f, n in zip(r.features, r.output_names)]
            )
        return point_in_time_join(
            entity.df, entity.timestamp_column, requests, frames, join_plan,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )

    def explain_historical_features(self, entity_df: object, features: object, full_feature_names: bool = False) -> str:
        """What ``get_historical_features`` would do with these inputs, and why."""
        return self._prepare(entity_df, features, full_feature_names)[2].explain()

    def _prepare(self, entity_df: object, features: object, full_feature_names: bool):
        df = entity_input.read_entity_df(self.spark, entity_df)
        requests = refs.resolve(
            self.repo, refs.parse_refs(self.repo, features), full_feature_names=full_feature_names,
            entity_columns=df.columns,
        )
        checked = entity_input.check_entity_df(df, [r.view for r in requests])
        # Sources are opened (and their schemas checked) before any Spark job runs.
        frames = {r.view.name: sources.read_view(self.spark, r.view, r.features) for r in requests}
        partitions = int(self.spark.conf.get("spark.sql.shuffle.partitions") or 200)
        join_plan = plan.make_plan(checked.df, checked.timestamp_column, [r.view for r in requests], partitions)
        return checked, requests, join_plan, frames
