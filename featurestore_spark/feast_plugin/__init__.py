"""Run Feast's own CLI and API on this engine: an offline store, a batch engine and an online store.

In ``feature_store.yaml``::

    offline_store:
      type: featurestore_spark.feast_plugin.DeltaOfflineStore
    batch_engine: featurestore_spark.feast_plugin.RedisPushEngine
    online_store:
      type: featurestore_spark.feast_plugin.NewerWinsRedisOnlineStore
      connection_string: "127.0.0.1:6379"

Feast imports each class by the dotted name in ``type`` and its config class by the same name
plus ``Config``, from the module that defines it; both are exported here.
"""

from featurestore_spark.feast_plugin.engine import RedisPushEngine, RedisPushEngineConfig
from featurestore_spark.feast_plugin.offline_store import (
    DeltaOfflineStore,
    DeltaOfflineStoreConfig,
    DeltaRetrievalJob,
)
from featurestore_spark.feast_plugin.online_store import NewerWinsRedisOnlineStore, NewerWinsRedisOnlineStoreConfig

__all__ = [
    "DeltaOfflineStore",
    "DeltaOfflineStoreConfig",
    "DeltaRetrievalJob",
    "NewerWinsRedisOnlineStore",
    "NewerWinsRedisOnlineStoreConfig",
    "RedisPushEngine",
    "RedisPushEngineConfig",
]
