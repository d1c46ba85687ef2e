"""The catalog of training sets: a Delta table with one row per build, its full manifest included.

A Delta table rather than a folder of files: appends from concurrent jobs are atomic, and it lives
wherever Spark can write (local disk, HDFS, object stores) with no extra service.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io

SCHEMA = (
    "name string, build_id string, created_at timestamp, output string, version long, "
    "features array<string>, rows_out long, seconds double, manifest string"
)


def record(spark: SparkSession, catalog: str, manifest: dict[str, Any]) -> None:
    """Append one build to the catalog (created on first use)."""
    row = (
        manifest["name"], manifest["build_id"], datetime.fromisoformat(manifest["created_at"]),
        manifest["output"]["location"], manifest["output"]["version"], manifest["features"],
        manifest["rows_out"], manifest["seconds"], json.dumps(manifest),
    )
    writer = spark.createDataFrame([row], SCHEMA).write.format("delta").mode("append")
    writer.save(catalog) if delta_io.is_path(catalog) else writer.saveAsTable(catalog)


def builds(spark: SparkSession, catalog: str, name: str | None = None) -> list[dict[str, Any]]:
    """Manifests of every build (or of ``name``'s builds), newest first. Empty when there is no catalog yet."""
    if not delta_io.exists(spark, catalog):
        return []
    df = delta_io.read_delta(spark, catalog, what="training-set catalog")
    if name is not None:
        df = df.where(F.col("name") == name)
    rows = df.orderBy(F.col("created_at").desc(), F.col("version").desc()).select("manifest").collect()
    return [json.loads(r["manifest"]) for r in rows]


def format_list(manifests: list[dict[str, Any]]) -> str:
    """One line per build: name, output version, when, rows, features, output."""
    if not manifests:
        return "no training sets yet"
    lines = [f"{'NAME':<24} {'VERSION':>7}  {'BUILT (UTC)':<25} {'ROWS':>12}  {'FEATURES':>8}  OUTPUT"]
    for m in manifests:
        lines.append(f"{m['name']:<24} {m['output']['version']:>7}  {m['created_at']:<25} {m['rows_out']:>12,}  "
                     f"{len(m['features']):>8}  {m['output']['location']}")
    return "\n".join(lines)


def format_show(manifests: list[dict[str, Any]]) -> str:
    """The newest build of a training set in full, then one line per earlier build."""
    m = manifests[0]
    entity = m["entity_source"]
    lines = [
        f"name:         {m['name']}",
        f"built:        {m['created_at']} in {m['seconds']} s (build {m['build_id']})",
        f"output:       {m['output']['location']} (Delta version {m['output']['version']})",
        f"rows:         {m['rows_in']:,} in, {m['rows_out']:,} out",
        f"entities:     {entity['kind']} {entity['location']}"
        + (f" @ version {entity['version']}" if entity.get("version") is not None else " (not versioned)"),
        "sources:",
        *[f"  {name:<24} {m['feature_views'][name]['source'].get('path') or m['feature_views'][name]['source']['table']}"
          f" @ version {v}" for name, v in m["source_versions"].items()],
        f"features ({len(m['features'])}):",
        *[f"  {ref:<44} column {col}, {m['null_counts'][col]:,} nulls" for ref, col in m["columns"].items()],
        f"definitions:  sha256 {m['definitions_sha256']}",
    ]
    if m.get("reproduces"):
        r = m["reproduces"]
        lines.append(f"reproduces:   {r['output']} version {r['version']} (build {r['build_id']})")
    if len(manifests) > 1:
        lines.append(f"earlier builds ({len(manifests) - 1}):")
        lines += [f"  {e['created_at']}  {e['output']['location']} @ version {e['output']['version']}, "
                  f"{e['rows_out']:,} rows" for e in manifests[1:]]
    return "\n".join(lines)
