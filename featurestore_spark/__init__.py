"""featurestore_spark: Spark + Delta Lake offline engine for Feast feature stores."""

from featurestore_spark.errors import (
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
from featurestore_spark.session import build_session
from featurestore_spark.specs import EntitySpec, FeatureRef, FeatureServiceSpec, FeatureViewSpec, FieldSpec, SourceSpec
from featurestore_spark.store import FeatureStore
from featurestore_spark.training.request import TrainingSetRequest

__all__ = [
    "FeatureStore",
    "TrainingSetRequest",
    "build_session",
    "EntitySpec",
    "FeatureRef",
    "FeatureServiceSpec",
    "FeatureViewSpec",
    "FieldSpec",
    "SourceSpec",
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
