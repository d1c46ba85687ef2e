"""Where a training set goes: the checks before a build, and the write, one Delta commit.

The same rules for every writer of a result (``create_training_set``, ``reproduce_training_set``,
``fsspark historical``):

- only a Delta table, an empty folder or nothing may be at the output: a folder of other files
  (a parquet table, anything) is refused, never turned into a Delta table with the old files beside it;
- ``error`` (the default) refuses an existing table, ``overwrite`` replaces it (its earlier versions stay
  readable by time travel), ``append`` adds rows with the same columns (names and types) only;
- a writer that loses a race to another one (both creating the same new table, or committing to it
  at once) gets ``ConcurrentWriteError``: nothing of its rows was committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurestore_spark import delta_io
from featurestore_spark.errors import ConcurrentWriteError, OutputExistsError, RequestError
from featurestore_spark.training.request import Output


def check_output(spark: SparkSession, out: Output, *, mode_setting: str = "output.mode") -> None:
    """What is at the output allows the mode. ``mode_setting`` names where the mode is set (for the message).

    Raises:
        OutputExistsError: the output exists and the mode is ``error``, or a folder (or file) that is not a
            Delta table is there.
        RequestError: the output is a catalog table that is not a Delta table.
    """
    if out.table is not None and delta_io.exists(spark, out.table) and not delta_io.is_delta_table(spark, out.table):
        raise RequestError(f"output table '{out.table}' exists but is not a Delta table; name another table, "
                           "or drop it first")
    # A log folder without a commit yet is another first write in flight (or one that died before its
    # commit): Delta settles that race itself at commit time, so it does not count as something held.
    if out.path is not None and not delta_io.exists(spark, out.path) and (
            held := [e for e in delta_io.entries(spark, out.path) if e != "_delta_log"]):
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise OutputExistsError(
            f"output '{out.path}' exists and is not a Delta table (it holds {shown}); writing there would leave "
            "those files beside the Delta table: choose another output, or move them away first"
        )
    if out.mode == "error" and delta_io.exists(spark, out.location):
        raise OutputExistsError(
            f"output '{out.location}' already exists; set {mode_setting} to overwrite (earlier versions stay "
            "readable by time travel) or append, or choose another output"
        )


def check_append(spark: SparkSession, out: Output, columns: list[tuple[str, str]], *,
                 mode_setting: str = "output.mode") -> None:
    """For ``append`` to an existing table: the rows' ``(name, type)`` columns are the table's (in any order).

    Raises:
        RequestError: naming the columns that differ.
    """
    if out.mode != "append" or not delta_io.exists(spark, out.location):
        return
    have = [(f.name, f.dataType.simpleString())
            for f in delta_io.read_delta(spark, out.location, what="output").schema.fields]
    if sorted(have) == sorted(columns):
        return
    table, rows = dict(have), dict(columns)
    differences = [f"column {c} {t} is not in the table" for c, t in columns if c not in table]
    differences += [f"the table's column {c} {t} is missing" for c, t in have if c not in rows]
    differences += [f"column {c} is {t} but {table[c]} in the table" for c, t in columns
                    if c in table and table[c] != t]
    raise RequestError(
        f"{mode_setting} append: the rows do not fit '{out.location}': {'; '.join(differences)}; use overwrite "
        "or another output"
    )


def in_table_order(spark: SparkSession, df: DataFrame, out: Output, *, mode_setting: str = "output.mode") -> DataFrame:
    """``df`` checked against the table it is appended to, its columns in the table's order (a table built
    when features were grouped by view has another order); ``df`` itself for other modes or a new table."""
    check_append(spark, out, [(f.name, f.dataType.simpleString()) for f in df.schema.fields],
                 mode_setting=mode_setting)
    if out.mode != "append" or not delta_io.exists(spark, out.location):
        return df
    existing = delta_io.read_delta(spark, out.location, what="output").columns
    return df.select(*[F.col(f"`{c}`") for c in existing])


def write(spark: SparkSession, df: DataFrame, out: Output, *, metadata: str | None = None) -> bool:
    """One Delta commit: either all rows land (with ``metadata`` as the commit's userMetadata), or nothing
    changes. A catalog table that exists is written at its location (as a path).

    Returns:
        True when a new catalog table was created.

    Raises:
        ConcurrentWriteError: another writer created or changed the table first; nothing was committed.
    """
    writer = df.write.format("delta").mode(out.mode)  # "error" is errorifexists (and the name Connect knows)
    if metadata is not None:
        writer = writer.option("userMetadata", metadata)
    if out.mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")  # a changed request may change the columns
    if out.partition_by:
        writer = writer.partitionBy(*out.partition_by)
    new_table = out.table if out.table is not None and not delta_io.exists(spark, out.table) else None
    try:
        if new_table is not None and metadata is not None:  # saveAsTable drops the writer's userMetadata:
            with _session_conf(spark, "spark.databricks.delta.commitInfo.userMetadata", metadata):  # the session's carries it
                writer.saveAsTable(new_table)
        elif new_table is not None:
            writer.saveAsTable(new_table)
        else:
            writer.save(out.path or delta_io.table_path(spark, out.location))
    except (PySparkException, Py4JJavaError) as exc:
        conflict = delta_io.commit_conflict(exc)
        condition = exc.getCondition() if isinstance(exc, PySparkException) else None
        if conflict is None and not (out.mode == "error" and condition in _EXISTS):
            raise
        # With mode error, a table another writer finished first is refused by Spark (_EXISTS); one it
        # committed while this write ran makes Delta refuse this commit (a conflict).
        if out.mode == "error":
            what = "created"
            then = ". Run it again with mode overwrite or append to replace or add to it, or choose another output"
        else:
            what, then = "changed", ": run it again"
        raise ConcurrentWriteError(
            f"another writer {what} '{out.location}' while this one was writing ({conflict or condition}); nothing "
            f"of this write was committed{then}",
            location=out.location, conflict=conflict or str(condition),
        ) from exc
    return new_table is not None


#: Spark's conditions for an ``errorifexists`` write to a table that exists.
_EXISTS = ("DELTA_PATH_EXISTS", "TABLE_OR_VIEW_ALREADY_EXISTS")

_SESSION_CONF = threading.Lock()


@contextmanager
def _session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` in the session for the duration, then as it was; one build at a time
    (builds in threads of one session would otherwise take each other's value)."""
    with _SESSION_CONF:
        before = spark.conf.get(key, None)
        spark.conf.set(key, value)
        try:
            yield
        finally:
            spark.conf.unset(key) if before is None else spark.conf.set(key, before)
