"""Manifests: what a training set was built from, exactly enough to build it again.

A manifest is JSON. Its core (the request with the entity source pinned, the feature views as they
were defined, every source's Delta version, library versions) goes into the Delta commit that writes
the training set (``userMetadata``), so the table itself says how to rebuild each version. After the
commit, the full manifest (the core plus output version, rows in and out, nulls per feature, seconds)
is written beside the data as ``_fsspark/manifest-v<version>.json`` and into the catalog.
"""

from __future__ import annotations

import json
import platform
import uuid
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from featurestore_spark import delta_io
from featurestore_spark.errors import RequestError
from featurestore_spark.specs import FeatureViewSpec, definitions_hash, view_to_dict

FORMAT = 1
MANIFEST_DIR = "_fsspark"  # VACUUM and Delta readers ignore folders starting with '_'
_PACKAGES = ("featurestore_spark", "pyspark", "delta-spark", "feast", "pandas", "pyarrow")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def core(
    *, name: str, request: dict, refs: list[str], views: list[FeatureViewSpec],
    entity: dict[str, Any], commits: dict[str, str | None], reproduces: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of the manifest known before the write (it goes into the Delta commit).

    ``commits``: per view, the id of the commit that made its source's pinned version
    (``delta_io.commit_id``), so that a rebuild can tell that version from the same version number of
    a table dropped and created again in its place."""
    return {
        "format": FORMAT,
        "build_id": uuid.uuid4().hex,
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "request": request,
        "features": refs,
        "entity_source": entity,
        "feature_views": {v.name: view_to_dict(v) for v in views},
        "source_versions": {v.name: v.source.version for v in views},
        "source_commits": commits,
        "definitions_sha256": definitions_hash(views),
        "library_versions": library_versions(),
        "reproduces": reproduces,
    }


def manifest_path(table_path: str, version: int) -> str:
    return f"{table_path.rstrip('/')}/{MANIFEST_DIR}/manifest-v{version:08d}.json"


def load(spark: Any, source: str, version: int | None = None) -> dict[str, Any]:
    """A manifest from a JSON file, or from the commit of a training-set table (its latest build, or ``version``).

    Raises:
        RequestError: nothing there, or the table has no build by this library at that version.
    """
    if source.endswith(".json"):
        try:
            return json.loads(delta_io.read_text(spark, source))
        except Exception as exc:  # py4j wraps FileNotFoundException; the message says which file
            raise RequestError(f"cannot read manifest {source}: {str(exc).splitlines()[0]}") from None
    if not delta_io.exists(spark, source):
        raise RequestError(f"'{source}' is neither a manifest .json file nor a Delta training-set table")
    from pyspark.sql import functions as F

    history = delta_io.history(spark, source).where(F.col("userMetadata").startswith('{"format"'))
    if version is not None:
        history = history.where(F.col("version") == version)
    row = history.orderBy(F.col("version").desc()).select("version", "userMetadata").first()
    if row is not None:
        recorded = json.loads(row["userMetadata"])  # the core: what the commit knew before it was made
        recorded.setdefault("output", {"location": source, "version": int(row["version"])})
        return recorded
    # The log keeps commits for delta.logRetentionDuration (30 days by default); the files stay.
    files = _manifest_files(spark, delta_io.table_path(spark, source))
    if version is not None:
        files = [f for f in files if f.endswith(f"manifest-v{version:08d}.json")]
    if files:
        return json.loads(delta_io.read_text(spark, files[-1]))
    at = f" at version {version}" if version is not None else ""
    raise RequestError(f"Delta table '{source}' has no training-set manifest{at}; was it built by fsspark?")


def _manifest_files(spark: Any, table_path: str) -> list[str]:
    """The ``_fsspark/manifest-v*.json`` files beside a table's data, oldest first."""
    return [f for f in delta_io.list_folder(spark, f"{table_path.rstrip('/')}/{MANIFEST_DIR}") if f.endswith(".json")]
