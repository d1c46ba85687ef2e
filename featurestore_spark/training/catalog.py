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
