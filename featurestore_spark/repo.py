"""Load a Feast feature repo into frozen specs, with or without a prior ``feast apply``.

The repo's Python files are imported (as Feast's own ``feast apply`` does) and the Feast
objects found in them are converted once into :mod:`featurestore_spark.specs`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import yaml
from feast import Entity, FeatureService, FeatureView
from feast.feature_view import DUMMY_ENTITY_NAME
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.repo_operations import get_repo_files
from feast.table_format import DeltaFormat

from featurestore_spark.errors import RepoError
from featurestore_spark.specs import (
    EntitySpec,
    FeatureRef,
    FeatureServiceSpec,
    FeatureViewSpec,
    FieldSpec,
    RepoSpec,
    SourceSpec,
)


def load_repo(repo_path: str | Path) -> RepoSpec:
    """Read ``feature_store.yaml`` and the Feast definitions of a repo.

    Args:
        repo_path: folder holding ``feature_store.yaml`` and the definition files.

    Returns:
        The repo as specs.

    Example:
        >>> repo = load_repo("feature_repo")  # doctest: +SKIP
        >>> sorted(repo.views)                # doctest: +SKIP
        ['customer_profile', 'driver_customer_stats', 'driver_hourly_stats']
    """
    root = Path(repo_path).resolve()
    config_file = root / "feature_store.yaml"
    if not config_file.is_file():
        raise RepoError(f"no feature_store.yaml in {root}; pass repo_path= (or --repo) the folder of a Feast repo")
    config = yaml.safe_load(config_file.read_text()) or {}
    project = config.get("project")
    if not project:
        raise RepoError(f"{config_file} has no 'project'; add `project: <name>`")

    objects = _import_definitions(root)
    online = config.get("online_store") or {}
    return repo_from_feast(
        project=project,
        objects=[o for o in objects if not isinstance(o, FeatureView) or type(o) is FeatureView],
        repo_path=str(root),
        online_store=tuple(online.items()) if isinstance(online, dict) else (("type", online),),
        entity_key_serialization_version=int(config.get("entity_key_serialization_version", 3)),
        registry=_registry_location(root, config.get("registry")),
    )


def repo_from_feast(
    *,
    project: str,
    objects: list[object],
    repo_path: str = "",
    online_store: tuple[tuple[str, object], ...] = (),
    entity_key_serialization_version: int = 3,
    registry: str | None = None,
) -> RepoSpec:
    """Convert Feast objects (entities, feature views, feature services) into a repo spec.

    Used by ``load_repo`` on a repo's definition files and by the Feast plugin on the objects
    Feast's registry hands it.

    Args:
        project: the Feast project name.
        objects: Feast ``Entity``, ``FeatureView`` and ``FeatureService`` objects; others are ignored.
        repo_path: the repo folder, if there is one.
        online_store: the ``online_store`` settings as (name, value) pairs.
        entity_key_serialization_version: Feast's entity key format version.
        registry: location of the Feast registry file, if any.

    Raises:
        RepoError: a view uses something the engine does not support (e.g. a non-Delta source).
    """
    entities = {e.name: _entity_spec(e) for e in objects if isinstance(e, Entity)}
    by_key = {e.join_key: e for e in entities.values()}
    views = {v.name: _view_spec(v, by_key, entities) for v in objects if isinstance(v, FeatureView)}
    services = {s.name: service_spec(s, views) for s in objects if isinstance(s, FeatureService)}
    return RepoSpec(
        project=project,
        repo_path=repo_path,
        views=views,
        entities=entities,
        services=services,
        online_store=online_store,
        entity_key_serialization_version=entity_key_serialization_version,
        registry=registry,
    )


def _registry_location(root: Path, registry: object) -> str | None:
    """``registry:`` is a path (relative to the repo), a URI, or a mapping with ``path``."""
    path = registry.get("path") if isinstance(registry, dict) else registry
    if not path:
        return None
    path = str(path)
    return path if "://" in path else str((root / path).resolve())


def _import_definitions(root: Path) -> list[object]:
    """Import every definition file of the repo; return the distinct Feast objects, in file order."""
    found: list[object] = []
    seen: set[int] = set()
    sys.path.insert(0, str(root))  # definition files may import each other, as under `feast apply`
    try:
        for i, file in enumerate(get_repo_files(root)):
            spec = importlib.util.spec_from_file_location(f"_fsspark_repo_{abs(hash(root))}_{i}", file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # re-raised with the file named; the cause is kept
                raise RepoError(f"importing {file} failed: {exc}") from exc
            for obj in vars(module).values():
                if isinstance(obj, (Entity, FeatureView, FeatureService)) and id(obj) not in seen:
                    seen.add(id(obj))
                    found.append(obj)
    finally:
        sys.path.remove(str(root))
    return found


def _value_type(dtype: object) -> str:
    return dtype.to_value_type().name  # type: ignore[attr-defined]


def _entity_spec(entity: Entity) -> EntitySpec:
    return EntitySpec(
        name=entity.name,
        join_key=entity.join_key,
        dtype=entity.value_type.name,
        description=entity.description,
        owner=entity.owner,
        tags=tuple(sorted(entity.tags.items())),
    )


def source_spec(source: object, *, owner: str) -> SourceSpec:
    """The spec of a Feast data source, if it is a Delta table (by path or catalog name).

    Args:
        source: a Feast data source.
        owner: who uses it, for error messages (e.g. "feature view 'driver_stats'").

    Raises:
        RepoError: the source is not a ``SparkSource`` over a Delta table.
    """
    source = delta_source(source, owner=owner)
    return SourceSpec(
        name=source.name,
        path=source.path or None,
        table=None if source.path else source.table,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        field_mapping=tuple(sorted(source.field_mapping.items())),
    )


def delta_source(source: object, *, owner: str) -> SparkSource:
    """``source`` itself, checked to be a ``SparkSource`` over a Delta table (see ``source_spec``)."""
    if not isinstance(source, SparkSource):
        raise RepoError(
            f"{owner} has a {type(source).__name__}; the engine reads Delta tables: use "
            "SparkSource(path=..., table_format=DeltaFormat()) or SparkSource(table=...)"
        )
    if source.path and not isinstance(source.table_format, DeltaFormat):
        raise RepoError(
            f"source '{source.name}' of {owner} is a path without table_format=DeltaFormat(); "
            "the engine reads Delta tables only: add table_format=DeltaFormat() (from feast.table_format)"
        )
    if source.query:
        raise RepoError(f"source '{source.name}' is a query; the engine reads Delta tables by path or table name")
    return source


def _view_spec(
    view: FeatureView, entities_by_key: dict[str, EntitySpec], entities: dict[str, EntitySpec]
) -> FeatureViewSpec:
    declared = {f.name: _value_type(f.dtype) for f in view.entity_columns}
    join_keys = list(view.join_keys)
    # An entity whose column the schema leaves out: `feast apply` adds it to the view; the engine does
    # the same, so that it works without an apply too.
    unknown = [e for e in view.entities if e not in entities and e != DUMMY_ENTITY_NAME]
    if unknown and len(join_keys) < len(view.entities):
        raise RepoError(f"feature view '{view.name}' uses entity '{unknown[0]}', which the repo does not define")
    join_keys += [k for k in (entities[e].join_key for e in view.entities if e in entities) if k not in join_keys]
    keys = []
    for key in join_keys:
        dtype = declared.get(key) or (entities_by_key[key].dtype if key in entities_by_key else None)
        if dtype is None:
            raise RepoError(f"feature view '{view.name}': join key '{key}' has no declared type; add it to the schema")
        keys.append(FieldSpec(name=key, dtype=dtype))
    try:
        features = tuple(FieldSpec(name=f.name, dtype=_value_type(f.dtype)) for f in view.features)
        return FeatureViewSpec(
            name=view.name,
            join_keys=tuple(keys),
            features=features,
            source=source_spec(view.batch_source, owner=f"feature view '{view.name}'"),
            ttl=view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None,
            description=view.description,
            owner=view.owner,
            tags=tuple(sorted(view.tags.items())),
            online=view.online,
        )
    except ValueError as exc:
        if isinstance(exc, RepoError):
            raise
        raise RepoError(str(exc)) from exc


def service_spec(service: FeatureService, views: dict[str, FeatureViewSpec]) -> FeatureServiceSpec:
    """A feature service as refs; a projection with an alias or a join-key map carries its projected view."""
    refs = []
    for p in service.feature_view_projections:
        base = views.get(p.name)
        if base is None:  # an unknown view: named as such when the refs are resolved
            refs += [FeatureRef(view=p.name, feature=f.name) for f in p.features]
            continue
        projected = None
        if p.name_alias or p.join_key_map:
            projected = project_view(base, p, f"feature service '{service.name}'")
        refs += [FeatureRef(view=p.name_to_use(), feature=f.name, projected=projected) for f in p.features]
    # String refs ("view:feature", or "view" for all its features), which Feast resolves only at apply.
    for ref in getattr(service, "_pending_feature_refs", ()):
        view, _, feature = ref.partition(":")
        if feature or view not in views:
            refs.append(FeatureRef(view=view, feature=feature))
        else:
            refs += [FeatureRef(view=view, feature=f.name) for f in views[view].features]
    refs = tuple(refs)
    return FeatureServiceSpec(
        name=service.name,
        features=refs,
        description=service.description,
        owner=service.owner,
        tags=tuple(sorted(service.tags.items())),
    )


def project_view(base: FeatureViewSpec, projection: object, owner: str) -> FeatureViewSpec:
    """``base`` as a Feast projection sees it: under its alias, joined on the entity columns its
    ``join_key_map`` names (each still read from the source column of the view's own key). ``owner``
    (what holds the projection) is named in errors."""
    mapping = dict(projection.join_key_map)  # type: ignore[attr-defined]
    unknown = sorted(set(mapping) - set(base.join_key_names))
    if unknown:
        raise RepoError(
            f"{owner}: join_key_map of feature view '{base.name}' maps {', '.join(unknown)}, "
            f"not join keys of the view (its join keys: {', '.join(base.join_key_names)})"
        )
    src = base.source
    field_mapping = tuple((col, name) for col, name in src.field_mapping if name not in mapping)
    field_mapping += tuple((src.column_for(key), entity_column) for key, entity_column in mapping.items())
    return dataclasses.replace(
        base,
        name=projection.name_alias or base.name,  # type: ignore[attr-defined]
        join_keys=tuple(dataclasses.replace(k, name=mapping.get(k.name, k.name)) for k in base.join_keys),
        source=dataclasses.replace(src, field_mapping=field_mapping),
    )
