"""Frozen, typed descriptions of what a Feast repo defines, as the engine uses them.

The engine never works on Feast objects directly: ``repo.load_repo`` turns them into these
specs once, so the join and the push depend on a small, validated surface.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

#: Feast value types the engine supports, with the Spark SQL type of their column.
SPARK_TYPES: dict[str, str] = {
    "INT32": "int",
    "INT64": "bigint",
    "FLOAT": "float",
    "DOUBLE": "double",
    "STRING": "string",
    "BYTES": "binary",
    "BOOL": "boolean",
    "UNIX_TIMESTAMP": "timestamp",
    "INT32_LIST": "array<int>",
    "INT64_LIST": "array<bigint>",
    "FLOAT_LIST": "array<float>",
    "DOUBLE_LIST": "array<double>",
    "STRING_LIST": "array<string>",
    "BYTES_LIST": "array<binary>",
    "BOOL_LIST": "array<boolean>",
    "UNIX_TIMESTAMP_LIST": "array<timestamp>",
}

#: Value types a join key may have (Feast's entity key serialization supports these).
JOIN_KEY_TYPES = ("INT32", "INT64", "STRING", "BYTES")


def _check_name(kind: str, name: str) -> None:
    if not name or not isinstance(name, str):
        raise ValueError(f"{kind} needs a non-empty name, got {name!r}")


@dataclass(frozen=True, kw_only=True)
class FieldSpec:
    """A named, typed column: a feature or a join key.

    Attributes:
        name: column name as users see it (after field_mapping).
        dtype: Feast ValueType name, one of ``SPARK_TYPES``.
    """

    name: str
    dtype: str

    def __post_init__(self) -> None:
        _check_name("field", self.name)
        if self.dtype not in SPARK_TYPES:
            raise ValueError(
                f"field '{self.name}' has type {self.dtype}, which the engine does not support "
                f"(supported: {', '.join(SPARK_TYPES)})"
            )

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES[self.dtype]


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """Where a view's rows live: a Delta table by path or by catalog name.

    Attributes:
        name: the Feast data source name.
        path: Delta table location (exclusive with ``table``).
        table: Delta table name in the Spark catalog (exclusive with ``path``).
        timestamp_field: event-time column, as named in the table.
        created_timestamp_column: optional column that orders rows with equal event time.
        field_mapping: pairs (column in the table, name in the view).
        version: Delta version to read (time travel); None reads the latest. Training sets pin it.
    """

    name: str
    path: str | None = None
    table: str | None = None
    timestamp_field: str
    created_timestamp_column: str | None = None
    field_mapping: tuple[tuple[str, str], ...] = ()
    version: int | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.table is None):
            raise ValueError(f"source '{self.name}' needs exactly one of path or table")
        _check_name(f"source '{self.name}' timestamp_field", self.timestamp_field)

    @property
    def location(self) -> str:
        """For messages: the path, or ``table <name>``."""
        return self.path if self.path is not None else f"table {self.table}"

    @property
    def address(self) -> str:
        """What ``delta_io`` takes: the path, or the table's name."""
        return self.path if self.path is not None else str(self.table)

    def column_for(self, name: str) -> str:
        """The table column that holds the view column ``name`` (inverse of field_mapping)."""
        for src, dst in self.field_mapping:
            if dst == name:
                return src
        return name


@dataclass(frozen=True, kw_only=True)
class FeatureViewSpec:
    """A feature view: join keys, features, source and TTL.

    Attributes:
        name: view name.
        join_keys: the entity columns, with the entity's declared type.
        features: the feature columns.
        source: where the rows live.
        ttl: how far back a row may be from the entity timestamp; None means unlimited.
        description, owner, tags: catalog metadata.
        online: whether the view is served online.
    """

    name: str
    join_keys: tuple[FieldSpec, ...]
    features: tuple[FieldSpec, ...]
    source: SourceSpec
    ttl: timedelta | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    online: bool = True

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        if not self.features:
            raise ValueError(f"feature view '{self.name}' has no features")
        for key in self.join_keys:
            if key.dtype not in JOIN_KEY_TYPES:
                raise ValueError(
                    f"feature view '{self.name}' join key '{key.name}' has type {key.dtype}; "
                    f"join keys must be one of {', '.join(JOIN_KEY_TYPES)}"
                )
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError(f"feature view '{self.name}': ttl must be positive or None (unlimited)")

    @property
    def join_key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.join_keys)

    def feature(self, name: str) -> FieldSpec | None:
        return next((f for f in self.features if f.name == name), None)


@dataclass(frozen=True, kw_only=True)
class EntitySpec:
    """An entity: its join key and declared type."""

    name: str
    join_key: str
    dtype: str
    description: str = ""
    owner: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class FeatureRef:
    """One requested feature: ``view:feature``.

    ``projected`` is set when the ref comes from a feature service's projection that renames the view
    (``with_name``) or maps its join keys to other entity columns (``with_join_key_map``): the view as
    that projection sees it, named ``view``.
    """

    view: str
    feature: str
    projected: FeatureViewSpec | None = None

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.feature}"


@dataclass(frozen=True, kw_only=True)
class FeatureServiceSpec:
    """A named list of feature references."""

    name: str
    features: tuple[FeatureRef, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class RepoSpec:
    """Everything the engine needs from a Feast repo."""

    project: str
    repo_path: str
    views: dict[str, FeatureViewSpec] = field(default_factory=dict)
    entities: dict[str, EntitySpec] = field(default_factory=dict)
    services: dict[str, FeatureServiceSpec] = field(default_factory=dict)
    online_store: tuple[tuple[str, object], ...] = ()
    entity_key_serialization_version: int = 3
    #: Feast registry location from feature_store.yaml (absolute, or a URI); None when not set.
    registry: str | None = None


def view_to_dict(view: FeatureViewSpec) -> dict[str, Any]:
    """A view spec as JSON-ready data (ttl in seconds)."""
    data = asdict(view)
    data["ttl"] = None if view.ttl is None else view.ttl.total_seconds()
    return data


def view_from_dict(data: dict[str, Any]) -> FeatureViewSpec:
    """The inverse of ``view_to_dict``."""
    src = dict(data["source"])
    src["field_mapping"] = tuple(tuple(p) for p in src.get("field_mapping", ()))
    return FeatureViewSpec(
        name=data["name"],
        join_keys=tuple(FieldSpec(**k) for k in data["join_keys"]),
        features=tuple(FieldSpec(**f) for f in data["features"]),
        source=SourceSpec(**src),
        ttl=None if data["ttl"] is None else timedelta(seconds=data["ttl"]),
        description=data.get("description", ""),
        owner=data.get("owner", ""),
        tags=tuple(tuple(t) for t in data.get("tags", ())),
        online=data.get("online", True),
    )


def definitions_hash(views: list[FeatureViewSpec]) -> str:
    """SHA-256 of the views' definitions (sources' pinned versions excluded: same definitions, same hash)."""
    canonical = []
    for view in sorted(views, key=lambda v: v.name):
        data = view_to_dict(view)
        data["source"].pop("version", None)
        canonical.append(data)
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
