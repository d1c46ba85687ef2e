"""What the plugin's classes share: the Spark session, and specs built from the objects Feast passes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from feast import FeatureView
from feast.repo_config import RepoConfig
from pyspark.sql import SparkSession

from featurestore_spark.errors import ConfigError, NotSupportedError
from featurestore_spark.online.settings import RedisSettings, redis_settings
from featurestore_spark.repo import project_view, repo_from_feast
from featurestore_spark.session import build_session
from featurestore_spark.specs import RepoSpec


def spark_session(config: RepoConfig) -> SparkSession:
    """The active SparkSession (a notebook's, a spark-submit job's), else one built with Delta and UTC.

    As Feast's Spark store does, an active session is used as it is; only when there is none (the
    ``feast`` CLI) one is built from the engine profile named in ``offline_store.profile``
    (default ``local``), with ``offline_store.spark_conf`` applied over it.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    store = config.offline_store
    profile = getattr(store, "profile", None) or "local"
    extra = dict(getattr(store, "spark_conf", None) or {})
    return build_session(profile, app_name="featurestore_spark-feast", extra_conf=extra)


def check_view(view: object) -> FeatureView:
    """Fail, before any Spark work, on feature views the engine does not run.

    Raises:
        NotSupportedError: an on-demand, batch or stream feature view, or a view derived from other views.
    """
    if type(view) is not FeatureView:
        raise NotSupportedError(
            f"feature view '{getattr(view, 'name', view)}' is a {type(view).__name__}; the featurestore_spark "
            "plugin runs plain FeatureViews over Delta sources: compute on-demand or batch transformations "
            "after retrieval, or use Feast's own offline store for these views"
        )
    if view.source_views:
        raise NotSupportedError(
            f"feature view '{view.name}' is derived from other feature views; the featurestore_spark plugin "
            "reads a view's own Delta source only"
        )
    return view


def repo_spec(config: RepoConfig, registry: object, project: str, views: Iterable[object]) -> RepoSpec:
    """A repo spec holding ``views`` (checked) and the project's entities from Feast's registry."""
    checked = [check_view(v) for v in views]
    entities = registry.list_entities(project, allow_cache=True)  # type: ignore[attr-defined]
    repo = repo_from_feast(
        project=project,
        objects=[*entities, *checked],
        entity_key_serialization_version=config.entity_key_serialization_version,
    )
    # A view requested through a projection (a FeatureService's with_name / with_join_key_map) goes
    # under the projection's name, joined on the entity columns it maps its keys to.
    projected = {
        v.projection.name_to_use(): project_view(repo.views[v.name], v.projection, "the feature service requested")
        for v in checked
        if v.projection.join_key_map or v.projection.name_to_use() != v.name
    }
    return dataclasses.replace(repo, views={**repo.views, **projected})


def redis_target(config: RepoConfig) -> RedisSettings:
    """The engine's Redis settings from Feast's ``online_store`` config (Feast's Redis store or the plugin's).

    Raises:
        ConfigError: the online store is not Redis, or uses feature view versioning.
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    online = config.online_store
    if not isinstance(online, RedisOnlineStoreConfig):
        raise ConfigError(
            f"online_store type {getattr(online, 'type', online)!r} is not Redis; the featurestore_spark engine "
            "pushes to Redis: set online_store type to featurestore_spark.feast_plugin.NewerWinsRedisOnlineStore "
            "(or redis), or keep Feast's batch_engine for this online store"
        )
    if getattr(config.registry, "enable_online_feature_view_versioning", False):
        raise ConfigError(
            "registry.enable_online_feature_view_versioning is on; the featurestore_spark engine writes "
            "unversioned view names: turn it off or keep Feast's batch_engine"
        )
    return redis_settings({
        "type": "redis",
        "connection_string": online.connection_string,
        "redis_type": online.redis_type.value,
        "key_ttl_seconds": online.key_ttl_seconds or 0,
    })
