"""``get_historical_features`` over a repo spec: validate everything, plan, then join."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark import sources
from featurestore_spark.offline import entity_input, refs
from featurestore_spark.offline.entity_input import EntityInput
from featurestore_spark.offline.pit_join import checked_micros, point_in_time_join
from featurestore_spark.offline.plan import JoinPlan, make_plan
from featurestore_spark.offline.refs import ViewRequest
from featurestore_spark.session import check_utc
from featurestore_spark.specs import RepoSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A checked request, ready to join."""

    entity: EntityInput
    requests: list[ViewRequest]
    frames: dict[str, DataFrame]
    plan: JoinPlan


def prepare(
    spark: SparkSession, repo: RepoSpec, entity_df: object, features: object, full_feature_names: bool = False
) -> Prepared:
    """Check names, columns and types (no Spark job), open the sources, then gather the plan's statistics."""
    check_utc(spark)
    df = entity_input.read_entity_df(spark, entity_df)
    requests = refs.resolve(
        repo, refs.parse_refs(repo, features), full_feature_names=full_feature_names, entity_columns=df.columns
    )
    entity = entity_input.check_entity_df(df, [r.view for r in requests])
    frames = {r.view.name: sources.read_view(spark, r.view, r.features) for r in requests}
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    plan = make_plan(entity.df, entity.timestamp_column, [r.view for r in requests], partitions)
    return Prepared(entity=entity, requests=requests, frames=frames, plan=plan)


def get_historical_features(
    spark: SparkSession,
    repo: RepoSpec,
    entity_df: object,
    features: object,
    *,
    full_feature_names: bool = False,
    filter_by_created_timestamp: bool = False,
) -> DataFrame:
    """See ``FeatureStore.get_historical_features``."""
    return join(prepare(spark, repo, entity_df, features, full_feature_names),
                filter_by_created_timestamp=filter_by_created_timestamp)


def join(p: Prepared, *, filter_by_created_timestamp: bool = False) -> DataFrame:
    """The lazy point-in-time join of a prepared request."""
    log.info("%s", p.plan.explain())
    if p.plan.entity_rows == 0:
        nulls = [
            F.lit(None).cast(r.view.feature(f).spark_type).alias(name)  # type: ignore[union-attr]
            for r, f, name in refs.in_request_order(p.requests)
        ]
        # Rows that appeared after the statistics saw none would get no features: fail the job then.
        return p.entity.df.where(checked_micros(p.entity.timestamp_column, p.plan).isNotNull()).select("*", *nulls)
    return point_in_time_join(
        p.entity.df, p.entity.timestamp_column, p.requests, p.frames, p.plan,
        filter_by_created_timestamp=filter_by_created_timestamp,
    )
