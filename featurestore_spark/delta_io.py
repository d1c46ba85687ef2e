"""Delta tables by path or catalog name: read (optionally at a pinned version), versions, commit metadata.

Everything goes through Delta's SQL (``DESCRIBE DETAIL``, ``DESCRIBE HISTORY``) and the DataFrame
reader, never the ``DeltaTable`` Python API: over Spark Connect that API needs Delta's Connect plugin
on the server, while the SQL runs wherever the Delta extension is loaded. Small text files (manifests,
commit files) go through ``files``.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, SparkSession

from featurestore_spark.errors import SourceError, SourceVersionError
from featurestore_spark.files import files_of, resolve


def is_path(location: str) -> bool:
    """A path has a '/' or a URI scheme; anything else is a table name in the catalog."""
    return "/" in location or "://" in location


def sql_ref(location: str) -> str:
    """``location`` as SQL names it: delta.`path` (backticks doubled), or the table name as given."""
    if is_path(location):
        return "delta.`" + location.replace("`", "``") + "`"
    return location


def _detail(spark: SparkSession, location: str):  # noqa: ANN202 (Row | None)
    """``DESCRIBE DETAIL`` of the Delta table (its location, id), or None when there is none. It loads the
    table's snapshot (Spark jobs, the first time): the cheap checks below come first."""
    from pyspark.errors import AnalysisException

    if not is_delta_table(spark, location):
        return None
    try:
        return spark.sql(f"DESCRIBE DETAIL {sql_ref(location)}").first()
    except AnalysisException:
        return None


def _described(spark: SparkSession, name: str) -> dict[str, str]:
    """The detail block of ``DESCRIBE TABLE EXTENDED`` of a catalog table as {field: value} (Provider,
    Location, ...): a catalog lookup, no Spark job. Empty when there is no such table."""
    if not spark.catalog.tableExists(name):
        return {}
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    fields, inside = {}, False
    for row in rows:  # the columns come first, then '# Detailed Table Information', then other blocks
        key = str(row["col_name"] or "")
        if key.startswith("#"):
            inside = key.strip() == "# Detailed Table Information"
        elif inside and key:
            fields[key] = str(row["data_type"])
    return fields


def exists(spark: SparkSession, location: str) -> bool:
    """Whether a Delta table (or, for a name, any table) is at ``location``."""
    if is_path(location):
        return is_delta_table(spark, location)
    return bool(spark.catalog.tableExists(location))


def is_delta_table(spark: SparkSession, location: str) -> bool:
    """Whether a Delta table is at ``location`` (a path: a ``_delta_log`` with a commit or a checkpoint;
    a name: a catalog table whose provider is delta). No Spark job either way, and for a path mostly no
    listing: a stream's log holds tens of thousands of files."""
    if not is_path(location):
        return _described(spark, location).get("Provider", "").lower() == "delta"
    files, log = files_of(spark), f"{location.rstrip('/')}/_delta_log"
    if files.exists(f"{log}/{0:020d}.json") or files.exists(f"{log}/_last_checkpoint"):
        return True
    # Version 0 cleaned up and no checkpoint pointer: any commit or checkpoint file (a log left by a
    # first commit that never happened has none).
    return any(re.fullmatch(r"\d{20}(\.json|\.checkpoint.*\.parquet)", n) for n in files.names(log))


def table_path(spark: SparkSession, location: str) -> str:
    """The storage path of a Delta table given by path or by name."""
    if is_path(location):
        return location
    described = _described(spark, location)
    if "Location" not in described:
        raise SourceError(f"no table '{location}'")
    return described["Location"]


def history(spark: SparkSession, location: str, limit: int | None = None) -> DataFrame:
    """The table's commits, newest first (``DESCRIBE HISTORY``): version, timestamp, userMetadata, ..."""
    return spark.sql(f"DESCRIBE HISTORY {sql_ref(location)}" + (f" LIMIT {int(limit)}" if limit else ""))


#: Delta's conditions for a version whose log (or checkpoint) is no longer there.
_GONE = ("DELTA_VERSION_NOT_FOUND", "DELTA_CANNOT_FIND_VERSION", "DELTA_LOG_FILE_NOT_FOUND", "DELTA_FILE_NOT_FOUND")


def read_delta(
    spark: SparkSession, location: str, *, what: str, version: int | None = None, any_table: bool = False
) -> DataFrame:
    """Read a Delta table by path or by name, at ``version`` (time travel) or the latest.

    ``any_table`` also takes a catalog table or view that is not Delta (the entity rows may be one).

    Raises:
        SourceError: nothing readable as Delta is there.
        SourceVersionError: ``version`` is no longer in the table's log.
    """
    try:
        if is_path(location) and not is_delta_table(spark, location):
            raise SourceError(_nothing_at(spark, location, what) or (
                f"{what}: '{location}' is not a Delta table (no _delta_log there); write it with "
                "df.write.format('delta') or point the source at the right path"
            ))
        if not is_path(location) and not spark.catalog.tableExists(location):
            raise SourceError(_nothing_at(spark, location, what) or f"{what}: no table '{location}'")
        if (not any_table and not is_path(location) and spark.catalog.tableExists(location)
                and not is_delta_table(spark, location)):
            raise SourceError(
                f"{what}: table '{location}' is not a Delta table; convert it (CONVERT TO DELTA) or point the "
                "source at a Delta table"
            )
        if version is None:
            return spark.read.format("delta").load(location) if is_path(location) else spark.read.table(location)
        return spark.read.format("delta").option("versionAsOf", version).load(table_path(spark, location))
    except (SourceError, SourceVersionError):
        raise
    except Exception as exc:  # AnalysisException and friends: the location or version is unusable
        first = str(exc).splitlines()[0]
        condition = exc.getCondition() if hasattr(exc, "getCondition") else None
        if version is not None and condition in _GONE:
            raise SourceVersionError(
                f"{what}: version {version} of Delta table '{location}' can no longer be read ({first}); "
                "its log was cleaned up (delta.logRetentionDuration): the training set cannot be rebuilt exactly"
            ) from None
        raise SourceError(f"{what}: cannot read Delta table '{location}': {first}") from exc


def latest_version(spark: SparkSession, location: str, *, what: str) -> int:
    """The table's current version (one read of the Delta log, no scan of the data).

    Raises:
        SourceError: no Delta table there (the message names ``what``).
    """
    if not exists(spark, location):
        raise SourceError(_nothing_at(spark, location, what) or (
            f"{what}: no Delta table at '{location}'; write it with df.write.format('delta') or point the source "
            "at the right path"))
    return int(history(spark, location, 1).select("version").first()["version"])


def _nothing_at(spark: SparkSession, location: str, what: str) -> str | None:
    """The message for a location where nothing is (not even a folder or a table of another format),
    else None."""
    if is_path(location):
        if path_exists(spark, location):
            return None
        return f"{what}: '{location}' does not exist; check the path"
    if spark.catalog.tableExists(location):
        return None
    return (f"{what}: table '{location}' does not exist (database {spark.catalog.currentDatabase()}); check the "
            "name, or give a path")


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether anything (a file, a folder) is at ``path``, on whatever file system it names."""
    return files_of(spark).exists(path)


def entries(spark: SparkSession, path: str) -> list[str]:
    """The names in the folder at ``path`` (files and folders), sorted; the file's own name when ``path``
    is a file; empty when nothing is there."""
    files = files_of(spark)
    if files.is_file(path):
        return [path.rstrip("/").rsplit("/", 1)[-1]]
    return files.names(path)


#: Delta's commit-conflict exceptions (``io.delta.exceptions``): another writer committed first.
_CONFLICTS = frozenset({
    "ConcurrentAppendException", "ConcurrentDeleteDeleteException", "ConcurrentDeleteReadException",
    "ConcurrentTransactionException", "ConcurrentWriteException", "DeltaConcurrentModificationException",
    "MetadataChangedException", "ProtocolChangedException",
})
_JAVA_CONFLICT = re.compile(r"io\.delta\.exceptions\.(\w+)")


def commit_conflict(exc: BaseException) -> str | None:
    """The name of Delta's commit-conflict exception ``exc`` is, else None.

    It arrives as ``delta.exceptions``' Python class once that module is imported, else as a
    ``Py4JJavaError`` (classic) or a Spark Connect error whose text names the Java class; either way
    the commit did not happen.
    """
    name = type(exc).__name__
    if name in _CONFLICTS and type(exc).__module__.startswith("delta."):
        return name
    if type(exc).__module__.startswith(("py4j", "pyspark")):
        found = _JAVA_CONFLICT.search(str(exc))
        if found and found.group(1) in _CONFLICTS:
            return found.group(1)
    return None


def table_id(spark: SparkSession, location: str) -> str:
    """The table's Delta id: a table dropped and created again at the same path or name gets a new one
    (its versions start again at 0)."""
    detail = _detail(spark, location)
    if detail is None:
        raise SourceError(f"no Delta table at '{location}'")
    return str(detail["id"])


def _unreadable() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    # Hadoop's FileNotFoundException (via py4j), pyarrow's (an OSError; a path it cannot parse, a
    # ValueError), a table gone from the catalog.
    return Py4JError, PySparkException, OSError, ValueError, SourceError


_UNREADABLE = _unreadable()


def _commit(spark: SparkSession, root: str, version: int) -> list[dict]:
    """The actions of commit ``version`` of the table at ``root`` (its ``_delta_log`` JSON file)."""
    import json

    text = read_text(spark, f"{root.rstrip('/')}/_delta_log/{version:020d}.json")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def commit_id(spark: SparkSession, location: str, version: int) -> str | None:
    """What tells the commit that made ``version`` of the table from any other: its ``txnId`` (else
    its time). A table dropped and created again at the same place does not repeat it; a table
    replaced in place (``CREATE OR REPLACE``) keeps its log, and so its earlier commits. None where the
    commit file cannot be read (its log cleaned up, or no Delta table there)."""
    try:
        actions = _commit(spark, table_path(spark, location), version)
    except _UNREADABLE:
        return None
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), None)
    return None if info is None else str(info.get("txnId") or info.get("timestamp"))


def adds_rows(spark: SparkSession, location: str, first: int, last: int) -> bool:
    """Whether a commit of versions first..last adds rows (an ``add`` with ``dataChange``): appends,
    merges, updates, rewrites by deletes; not OPTIMIZE, property or constraint changes. Read newest
    first, stopping at the first that does; a commit file that cannot be read counts as adding rows."""
    root = table_path(spark, location)
    for version in range(last, first - 1, -1):
        try:
            actions = _commit(spark, root, version)
        except _UNREADABLE:
            return True
        if any("add" in a and a["add"].get("dataChange", True) for a in actions):
            return True
    return False


def missing_files(spark: SparkSession, df: DataFrame) -> list[str]:
    """Data files a (time-travelled) read needs that are gone, e.g. removed by VACUUM (wherever they
    are: a shallow clone's files live in its source table's folder)."""
    return _absent(spark, list(df.inputFiles()))


def missing_change_files(spark: SparkSession, root: str, first: int, last: int) -> list[str]:
    """Files a change-data-feed read of versions first..last needs that are gone (VACUUM): the commits'
    ``cdc`` files, and the ``add`` and ``remove`` files Delta reads when a commit has no ``cdc`` file."""
    needed = []
    for version in range(first, last + 1):
        actions = _commit(spark, root, version)
        cdc = [a["cdc"]["path"] for a in actions if "cdc" in a]  # always dataChange=false, by the protocol
        needed += cdc or [a[kind]["path"] for a in actions for kind in ("add", "remove")
                          if kind in a and a[kind].get("dataChange", True)]
    return _absent(spark, [resolve(root, rel) for rel in needed])


#: Up to this many files are looked up one by one; more, by one listing of each folder that holds them.
_LOOKUPS = 200


def _absent(spark: SparkSession, paths: list[str]) -> list[str]:
    """Which of ``paths`` do not exist. A few are looked up one by one; many, by listing each folder
    that holds some of them (not the whole table: its other partitions and its change data can hold
    far more files)."""
    files = files_of(spark)
    if len(paths) <= _LOOKUPS:
        return [p for p in paths if not files.exists(p)]
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        by_folder.setdefault(path.rstrip("/").rsplit("/", 1)[0], []).append(path)
    gone = []
    for folder, wanted in by_folder.items():
        names = set(files.names(folder))
        gone += [p for p in wanted if p.rstrip("/").rsplit("/", 1)[-1] not in names]
    return gone


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write (replace) a small text file at ``path``."""
    files_of(spark).write_text(path, text)


def read_text(spark: SparkSession, path: str) -> str:
    """Read a small text file."""
    return files_of(spark).read_text(path)


def list_folder(spark: SparkSession, folder: str) -> list[str]:
    """The files directly in ``folder``, sorted; empty when it does not exist."""
    return files_of(spark).files(folder)
