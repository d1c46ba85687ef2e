"""Errors raised by featurestore_spark.

Every error names the culprit (column, feature, view, setting) and the fix. Each class
also inherits the matching builtin, so ``except ValueError`` keeps working for callers
that do not know this library.
"""

from __future__ import annotations

from collections.abc import Iterable


class FeatureStoreError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(FeatureStoreError, ValueError):
    """A configuration file or setting is invalid."""


class RepoError(FeatureStoreError, ValueError):
    """The Feast feature repo cannot be loaded or uses something the engine does not support."""


class MissingColumnError(FeatureStoreError, ValueError):
    """An input lacks a column the request needs."""

    def __init__(self, *, column: str, where: str, needed_by: str, available: Iterable[str], fix: str = ""):
        self.column, self.where, self.needed_by = column, where, needed_by
        self.available = tuple(available)
        msg = f"{where} lacks {needed_by} '{column}' (columns: {', '.join(self.available) or 'none'})"
        super().__init__(msg + (f". {fix}" if fix else ""))


class UnknownFeatureViewError(FeatureStoreError, ValueError):
    """A feature reference names a view the repo does not define."""

    def __init__(self, *, view: str, ref: str, known: Iterable[str]):
        self.view, self.ref, self.known = view, ref, tuple(sorted(known))
        super().__init__(
            f"feature reference '{ref}' names unknown feature view '{view}'"
            f" (views in the repo: {', '.join(self.known) or 'none'})"
        )


class UnknownFeatureError(FeatureStoreError, ValueError):
    """A feature reference names a feature its view does not have."""

    def __init__(self, *, view: str, feature: str, known: Iterable[str]):
        self.view, self.feature, self.known = view, feature, tuple(known)
        super().__init__(
            f"feature view '{view}' has no feature '{feature}' (its features: {', '.join(self.known)})"
        )


class InvalidFeatureRefError(FeatureStoreError, ValueError):
    """A feature reference is not of the form 'view:feature'."""


class FeatureNameCollisionError(FeatureStoreError, ValueError):
    """Two requested features (or a feature and an entity column) get the same output name."""

    def __init__(self, *, name: str, first: str, second: str):
        self.name, self.first, self.second = name, first, second
        super().__init__(
            f"output column '{name}' would come from both {first} and {second}; pass full_feature_names=True "
            "(--full-feature-names, or options.full_feature_names in a request) to name features 'view__feature', "
            "or request only one of them"
        )


#: The Spark SQL type to cast a join key to, per declared Feast type (for the hint in ``JoinKeyTypeError``).
_SQL_TYPES = {"INT64": "BIGINT", "INT32": "INT", "STRING": "STRING", "BYTES": "BINARY"}


class JoinKeyTypeError(FeatureStoreError, TypeError):
    """A join-key column's type cannot be compared with the entity's declared type."""

    def __init__(self, *, column: str, where: str, actual: str, declared: str, view: str):
        self.column, self.where, self.actual, self.declared, self.view = column, where, actual, declared, view
        sql = _SQL_TYPES.get(declared, declared)
        super().__init__(
            f"join key '{column}' in {where} has type {actual}, but feature view '{view}' declares it "
            f"{declared}; cast the column to a matching type (e.g. F.col('{column}').cast('{sql.lower()}'), or "
            f"CAST({column} AS {sql}) in SQL)"
        )


class TimestampTypeError(FeatureStoreError, TypeError):
    """A timestamp column is not of a timestamp type."""


class EntityInputError(FeatureStoreError, TypeError):
    """``entity_df`` is of a kind the engine cannot read."""


class NullEventTimestampError(FeatureStoreError, ValueError):
    """The entity dataframe has rows without an event timestamp."""

    def __init__(self, *, column: str, count: int):
        self.column, self.count = column, count
        super().__init__(
            f"entity_df has {count} row(s) with a null '{column}'; every entity row needs an event "
            f"timestamp: drop or fill those rows (e.g. entity_df.dropna(subset=['{column}']), or WHERE {column} IS "
            "NOT NULL in SQL)"
        )


class SourceError(FeatureStoreError, ValueError):
    """A feature view's source cannot be read as a Delta table."""


class RequestError(FeatureStoreError, ValueError):
    """A training-set request is malformed: an unknown key, a wrong type, a missing or conflicting setting."""


class OutputExistsError(FeatureStoreError, FileExistsError):
    """The output exists and the mode is ``error`` (the default), or something other than a Delta table is there."""


class ConcurrentWriteError(FeatureStoreError, RuntimeError):
    """Another writer committed to the same Delta table first (a lost race): nothing of this write was
    committed, and running it again resolves the conflict."""

    def __init__(self, message: str, *, location: str, conflict: str):
        self.location, self.conflict = location, conflict
        super().__init__(message)


class SourceVersionError(FeatureStoreError, ValueError):
    """A pinned Delta version of a source can no longer be read (its log or data files were removed)."""


class NotSupportedError(FeatureStoreError, NotImplementedError):
    """A Feast feature the engine does not implement (e.g. on-demand feature views in the Feast plugin)."""


class OnlineStoreError(FeatureStoreError, ConnectionError):
    """The online store cannot be reached, refused the credentials, or did not take every write."""
