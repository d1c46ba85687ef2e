"""Build a training set from a request: pin every source's Delta version, join, write atomically, record.

The same function builds a new training set and rebuilds an old one from its manifest: a rebuild
reads the recorded feature-view definitions and every source at its recorded Delta version.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.errors import FeatureStoreError, RequestError, SourceVersionError
from featurestore_spark.offline import refs as refs_mod
from featurestore_spark.offline import retrieval
from featurestore_spark.offline.entity_input import check_entity_df, find_timestamp_column
from featurestore_spark.specs import FeatureViewSpec, RepoSpec, view_from_dict
from featurestore_spark.training import catalog as catalog_mod
from featurestore_spark.training import manifest as manifest_mod
from featurestore_spark.training import output as output_mod
from featurestore_spark.training.request import EntitySource, Output, TrainingSetRequest, load_request

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
STEPS = ("check the request", "pin source versions", "plan the join", "join and write", "record the manifest")


@dataclass(frozen=True)
class TrainingSetResult:
    """What a build produced."""

    name: str
    output: str
    version: int
    rows_in: int
    rows_out: int
    seconds: float
    manifest_path: str
    manifest: dict[str, Any]

    def summary(self) -> str:
        return (f"training set {self.name}: {self.rows_out:,} rows in {self.seconds:.1f} s -> "
                f"{self.output} (Delta version {self.version})")


def create_training_set(
    spark: SparkSession, repo: RepoSpec, request: object, *, catalog: str, progress: Progress | None = None
) -> TrainingSetResult:
    """Build the training set a request describes. See ``FeatureStore.create_training_set``."""
    started = time.perf_counter()
    say = _stepper(progress)
    say(0)
    req = load_request(request)
    output_mod.check_output(spark, req.output)
    parsed = refs_mod.parse_refs(repo, req.features)
    # Unknown views or features and colliding names fail here, before any table is opened.
    requests = refs_mod.resolve(repo, parsed, full_feature_names=req.options.full_feature_names, entity_columns=())
    refs = [r.ref for r in parsed]
    # Views as the request sees them (a service's projections too), under the names the refs use.
    repo = replace(repo, views={**repo.views, **{r.view.name: r.view for r in requests}})
    _check_columns(spark, repo, _read_entities(spark, req.entities, req), refs, req)
    say(1)
    views = [_pin_view(spark, r.view) for r in requests]
    entities = req.entities
    if entities.kind in ("delta", "table") and entities.version is None:
        version = delta_io.latest_version(spark, entities.location, what="entity source")
        entities = entities.model_copy(update={"version": version})
    pinned = req.model_copy(update={"entities": entities})
    return _build(spark, repo, pinned, refs, views, catalog=catalog, say=say, started=started, reproduces=None)


def reproduce_training_set(
    spark: SparkSession, repo: RepoSpec, source: str, output: object, *, catalog: str,
    version: int | None = None, progress: Progress | None = None,
) -> TrainingSetResult:
    """Rebuild a training set from its manifest (a .json file, or the training-set table itself).

    The recorded feature-view definitions are used (not the repo's current ones), every Delta
    source is read at its recorded version, and the result goes to ``output`` (a path, or an
    ``Output``-shaped dict).

    Raises:
        SourceVersionError: a recorded version can no longer be read (its files were vacuumed).
    """
    started = time.perf_counter()
    say = _stepper(progress)
    say(0)
    recorded = manifest_mod.load(spark, source, version)
    out = Output.model_validate({"path": output} if isinstance(output, str) else output)
    req = load_request({**recorded["request"], "output": out.model_dump(mode="json", exclude_none=True)})
    output_mod.check_output(spark, req.output)
    views = [view_from_dict(v) for v in recorded["feature_views"].values()]
    refs = list(recorded["features"])
    _check_columns(spark, replace(repo, views={v.name: v for v in views}), _read_entities(spark, req.entities, req),
                   refs, req)
    say(1)
    commits = recorded.get("source_commits", {})  # manifests written before commits were recorded have none
    for view in views:
        _check_readable(spark, view.source.address, view.source.version,
                        f"source of feature view '{view.name}'", commits.get(view.name))
    if req.entities.kind in ("delta", "table"):
        _check_readable(spark, req.entities.location, req.entities.version, "entity source",
                        recorded.get("entity_source", {}).get("commit"))
    reproduces = {"output": recorded.get("output", {}).get("location", source), "build_id": recorded["build_id"],
                  "version": recorded.get("output", {}).get("version", version)}
    return _build(spark, repo, req, refs, views, catalog=catalog, say=say,
                  started=started, reproduces=reproduces)


def _build(
    spark: SparkSession, repo: RepoSpec, req: TrainingSetRequest, refs: list[str], views: list[FeatureViewSpec],
    *, catalog: str, say: Callable[[int], None], started: float, reproduces: dict | None,
) -> TrainingSetResult:
    say(2)
    pinned_repo = replace(repo, views={v.name: v for v in views})
    entity_df = _read_entities(spark, req.entities, req)
    prepared = retrieval.prepare(spark, pinned_repo, entity_df, refs, req.options.full_feature_names)
    df = retrieval.join(prepared, filter_by_created_timestamp=req.options.filter_by_created_timestamp)
    columns = {f"{r.view.name}:{f}": n for r, f, n in refs_mod.in_request_order(prepared.requests)}
    # Checked again on the rows' own schema: an unpinned entity source may have changed since the check.
    df = output_mod.in_table_order(spark, df, req.output)
    outputs = list(columns.values())
    entity = {"kind": req.entities.kind, "location": req.entities.location, "version": req.entities.version}
    if req.entities.version is not None:
        entity["commit"] = delta_io.commit_id(spark, req.entities.location, req.entities.version)
    commits = {v.name: delta_io.commit_id(spark, v.source.address, v.source.version)
               for v in views if v.source.version is not None}
    core = manifest_mod.core(name=req.name, request=req.to_dict(), refs=refs, views=views, entity=entity,
                             commits=commits, reproduces=reproduces)
    say(3)
    observation = Observation(f"training_set_{core['build_id']}")
    observed = df.observe(
        observation, F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.col(f"`{n}`").isNull().cast("long")).alias(f"null_{i}") for i, n in enumerate(outputs)],
    )
    sources = [f"'{v.source.location}' v{v.source.version}" for v in views]
    sources.append(f"entity source '{req.entities.location}'"
                   + (f" v{req.entities.version}" if req.entities.version is not None else " (not pinned)"))
    created = _write(spark, observed, req.output, json.dumps(core), ", ".join(sources))
    try:
        table_path = delta_io.table_path(spark, req.output.location)
        version = _committed_version(spark, req.output.location, core["build_id"])
        # Spark fills the observation only for a write by path: a new catalog table is counted from
        # its first version, which holds this build's rows alone.
        metrics = _counted(spark, table_path, version, outputs) if created else observation.get
        say(4)
        seconds = round(time.perf_counter() - started, 2)
        full = {
            **core,
            "output": {"location": req.output.location, "path": table_path, "version": version},
            "rows_in": prepared.plan.entity_rows,
            "rows_out": int(metrics["rows"]),
            "columns": columns,
            "null_counts": {n: int(metrics[f"null_{i}"] or 0) for i, n in enumerate(outputs)},
            "seconds": seconds,
        }
        path = manifest_mod.manifest_path(table_path, version)
        delta_io.write_text(spark, path, json.dumps(full, indent=2))
        catalog_mod.record(spark, catalog, full)
    except Exception as exc:
        # The rows are committed (and their commit holds the manifest's core); only the records failed.
        raise FeatureStoreError(
            f"training set '{req.name}' was written to {req.output.location} (build {core['build_id']}), but "
            f"recording its manifest failed: {str(exc).splitlines()[0]}. The table's commit metadata still "
            "describes the build: --reproduce works on it"
        ) from exc
    result = TrainingSetResult(name=req.name, output=req.output.location, version=version,
                               rows_in=full["rows_in"], rows_out=full["rows_out"], seconds=seconds,
                               manifest_path=path, manifest=full)
    log.info("%s", result.summary())
    return result


def _stepper(progress: Progress | None) -> Callable[[int], None]:
    def say(i: int) -> None:
        line = f"[{i + 1}/{len(STEPS)}] {STEPS[i]}"
        log.info("%s", line)
        if progress is not None:
            progress(line)
    return say


def _pin_view(spark: SparkSession, view: FeatureViewSpec) -> FeatureViewSpec:
    src = view.source
    if src.version is not None:
        return view
    version = delta_io.latest_version(spark, src.address, what=f"source of feature view '{view.name}'")
    return replace(view, source=replace(src, version=version))


def _read_entities(spark: SparkSession, src: EntitySource, req: TrainingSetRequest) -> DataFrame:
    if src.kind == "sql":
        df = spark.sql(src.location)
    elif src.kind == "parquet":
        df = spark.read.parquet(src.location)
    else:
        df = delta_io.read_delta(spark, src.location, what="entity source", version=src.version)
    opts = req.options
    if opts.start_time is None and opts.end_time is None:
        return df
    ts = F.col(f"`{find_timestamp_column(df)}`")
    if opts.start_time is not None:
        df = df.where(ts >= F.lit(opts.start_time))
    if opts.end_time is not None:
        df = df.where(ts < F.lit(opts.end_time))
    return df


def _check_columns(spark: SparkSession, repo: RepoSpec, entity_df: DataFrame, refs: list[str],
                   req: TrainingSetRequest) -> None:
    """Entity columns, partition columns and (for append) the existing table's schema, from schemas alone."""
    requests = refs_mod.resolve(repo, refs_mod.parse_refs(repo, refs),
                                full_feature_names=req.options.full_feature_names, entity_columns=entity_df.columns)
    check_entity_df(entity_df, [r.view for r in requests])
    columns = [(f.name, f.dataType.simpleString()) for f in entity_df.schema.fields] + [
        (name, r.view.feature(f).spark_type)  # type: ignore[union-attr]
        for r, f, name in refs_mod.in_request_order(requests)
    ]
    out = req.output
    missing = [c for c in out.partition_by if c not in dict(columns)]
    if missing:
        raise RequestError(
            f"output.partition_by names {', '.join(missing)}, not columns of the training set "
            f"(columns: {', '.join(c for c, _ in columns)})"
        )
    output_mod.check_append(spark, out, columns)  # the order may differ: the rows are appended in the table's


def _write(spark: SparkSession, df: DataFrame, out: Output, metadata: str, sources: str) -> bool:
    """``output.write``, naming the sources when one of their data files is gone mid-write."""
    try:
        return output_mod.write(spark, df, out, metadata=metadata)
    except (PySparkException, Py4JJavaError) as exc:
        text = str(exc)
        if "FILE_NOT_EXIST" in text or "FileNotFoundException" in text:
            missing = next((line.strip() for line in text.splitlines() if "FILE_NOT_EXIST" in line
                            or "FileNotFoundException" in line), text.splitlines()[0])
            raise SourceVersionError(
                f"a data file of a source is gone (vacuumed or rewritten?) while writing '{out.location}': "
                f"{missing[:300]} (sources: {sources}); nothing was written"
            ) from None
        raise


def _counted(spark: SparkSession, table_path: str, version: int, outputs: list[str]) -> dict:
    """Rows and nulls per output column of a table version, as the build's observation counts them."""
    df = spark.read.format("delta").option("versionAsOf", version).load(table_path)
    row = df.agg(F.count(F.lit(1)).alias("rows"),
                 *[F.sum(F.col(f"`{n}`").isNull().cast("long")).alias(f"null_{i}") for i, n in enumerate(outputs)])
    return row.collect()[0].asDict()  # a global aggregate: one row


def _committed_version(spark: SparkSession, location: str, build_id: str) -> int:
    row = delta_io.history(spark, location, 50).where(F.col("userMetadata").contains(build_id)).select("version").first()
    if row is None:  # fifty other commits since ours: look through the whole history
        row = delta_io.history(spark, location).where(F.col("userMetadata").contains(build_id)).select("version").first()
    if row is None:
        raise FeatureStoreError(f"no commit of '{location}' carries build {build_id} in its metadata")
    return int(row["version"])


def _check_readable(spark: SparkSession, location: str, version: int | None, what: str, commit: str | None) -> None:
    """The recorded version of the recorded table can still be read whole."""
    if version is None:
        return
    df = delta_io.read_delta(spark, location, what=what, version=version)
    if commit is not None and (now := delta_io.commit_id(spark, location, version)) not in (None, commit):
        raise SourceVersionError(
            f"{what}: version {version} of the Delta table at '{location}' is not the one the build read: the table "
            f"was dropped and created again (commit {now}, the build read {commit}); the training set cannot be "
            "rebuilt exactly"
        )
    gone = delta_io.missing_files(spark, df)
    if gone:
        raise SourceVersionError(
            f"{what}: version {version} of Delta table '{location}' is no longer readable: {len(gone)} of its "
            f"data files are gone (removed by VACUUM?), e.g. {gone[0]}; the training set cannot be rebuilt "
            "exactly. Keep versions you may rebuild within delta.deletedFileRetentionDuration"
        )
