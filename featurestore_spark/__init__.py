"""featurestore_spark: Spark + Delta Lake offline engine for Feast feature stores."""

from typing import TYPE_CHECKING

from featurestore_spark.errors import (
    ConcurrentWriteError,
    ConfigError,
    EntityInputError,
    FeatureNameCollisionError,
    FeatureStoreError,
    InvalidFeatureRefError,
    JoinKeyTypeError,
    MissingColumnError,
    NotSupportedError,
    NullEventTimestampError,
    OnlineStoreError,
    OutputExistsError,
    RepoError,
    RequestError,
    SourceError,
    SourceVersionError,
    TimestampTypeError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)

if TYPE_CHECKING:
    from featurestore_spark.kafka_source import KafkaSource
    from featurestore_spark.session import build_session
    from featurestore_spark.specs import (
        EntitySpec,
        FeatureRef,
        FeatureServiceSpec,
        FeatureViewSpec,
        FieldSpec,
        SourceSpec,
    )
    from featurestore_spark.store import FeatureStore
    from featurestore_spark.training.request import TrainingSetRequest

#: Names imported on first use: the store pulls in Feast (seconds of imports), which the CLI does not
#: need to check its arguments and request files.
_LAZY = {
    "build_session": "featurestore_spark.session",
    "KafkaSource": "featurestore_spark.kafka_source",
    "EntitySpec": "featurestore_spark.specs",
    "FeatureRef": "featurestore_spark.specs",
    "FeatureServiceSpec": "featurestore_spark.specs",
    "FeatureViewSpec": "featurestore_spark.specs",
    "FieldSpec": "featurestore_spark.specs",
    "SourceSpec": "featurestore_spark.specs",
    "FeatureStore": "featurestore_spark.store",
    "TrainingSetRequest": "featurestore_spark.training.request",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'featurestore_spark' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value

__all__ = [
    "FeatureStore",
    "KafkaSource",
    "TrainingSetRequest",
    "build_session",
    "EntitySpec",
    "FeatureRef",
    "FeatureServiceSpec",
    "FeatureViewSpec",
    "FieldSpec",
    "SourceSpec",
    "ConcurrentWriteError",
    "ConfigError",
    "EntityInputError",
    "FeatureNameCollisionError",
    "FeatureStoreError",
    "InvalidFeatureRefError",
    "JoinKeyTypeError",
    "MissingColumnError",
    "NotSupportedError",
    "NullEventTimestampError",
    "OnlineStoreError",
    "OutputExistsError",
    "RepoError",
    "RequestError",
    "SourceError",
    "SourceVersionError",
    "TimestampTypeError",
    "UnknownFeatureError",
    "UnknownFeatureViewError",
]
