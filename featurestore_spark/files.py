"""Small files next to the tables (manifests, commit files of a Delta log): look up, list, read, write.

A classic session goes through Hadoop's ``FileSystem`` in the driver's JVM, so the files land wherever
the tables do (local disk, HDFS, S3, ABFS) with the session's own credentials. A Spark Connect client
has no JVM: it uses pyarrow's file systems (local, S3, GCS, HDFS, ABFS) from the client's process,
which must then see the same storage as the server, as a notebook next to its cluster does.
"""

from __future__ import annotations

import posixpath
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from pyspark.sql import SparkSession

from featurestore_spark.runtime import is_connect


class Files(Protocol):
    def exists(self, path: str) -> bool: ...
    def is_file(self, path: str) -> bool: ...
    def names(self, folder: str) -> list[str]: ...
    def files(self, folder: str) -> list[str]: ...
    def read_text(self, path: str) -> str: ...
    def write_text(self, path: str, text: str) -> None: ...


def files_of(spark: SparkSession) -> Files:
    """The file access that fits the session."""
    return ArrowFiles() if is_connect(spark) else HadoopFiles(spark)


def resolve(root: str, relative: str) -> str:
    """The path (unescaped, as Hadoop prints paths) of a Delta log entry's file: the log holds URIs,
    escaped, relative to the table's folder or absolute."""
    if urlparse(relative).scheme:
        return unquote(relative)
    return posixpath.join(root.rstrip("/"), unquote(relative))


class HadoopFiles:
    """Through the driver JVM's Hadoop ``FileSystem`` (the session's storage settings)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]

    def _fs(self, path: str):  # noqa: ANN202 (py4j objects)
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p.getFileSystem(self._conf), p

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_file(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p) and fs.getFileStatus(p).isFile())

    def names(self, folder: str) -> list[str]:
        fs, p = self._fs(folder)
        if not fs.exists(p):
            return []
        return sorted(str(status.getPath().getName()) for status in fs.listStatus(p))

    def files(self, folder: str) -> list[str]:
        fs, p = self._fs(folder)
        if not fs.exists(p):
            return []
        return sorted(str(status.getPath()) for status in fs.listStatus(p) if status.isFile())

    def read_text(self, path: str) -> str:
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write_text(self, path: str, text: str) -> None:
        fs, p = self._fs(path)
        out = fs.create(p, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()


class ArrowFiles:
    """Through pyarrow's file systems, from this process (a Spark Connect client has no JVM)."""

    @staticmethod
    def _fs(path: str):  # noqa: ANN205 (pyarrow.fs.FileSystem, path)
        from pyarrow import fs

        scheme = urlparse(path).scheme
        if not scheme:
            return fs.LocalFileSystem(), path
        if scheme == "file":  # "file:/tmp/x" (as Hadoop names files, unescaped) or "file:///tmp/x"
            rest = path[len("file:"):]
            return fs.LocalFileSystem(), rest[2:] if rest.startswith("//") else rest
        # Hadoop's names for object stores; pyarrow knows them by their plain names.
        path = {"s3a": "s3", "s3n": "s3", "abfss": "abfs"}.get(scheme, scheme) + "://" + path.split("://", 1)[1]
        return fs.FileSystem.from_uri(path)

    def _info(self, path: str):  # noqa: ANN202
        from pyarrow import fs

        filesystem, p = self._fs(path)
        return filesystem, p, filesystem.get_file_info(p).type, fs.FileType

    def exists(self, path: str) -> bool:
        _, _, kind, types = self._info(path)
        return kind != types.NotFound

    def is_file(self, path: str) -> bool:
        _, _, kind, types = self._info(path)
        return kind == types.File

    def _listing(self, folder: str) -> list:
        from pyarrow import fs

        filesystem, p, kind, types = self._info(folder)
        if kind != types.Directory:
            return []
        return filesystem.get_file_info(fs.FileSelector(p))

    def names(self, folder: str) -> list[str]:
        return sorted(info.base_name for info in self._listing(folder))

    def files(self, folder: str) -> list[str]:
        from pyarrow import fs

        prefix = folder.rstrip("/")
        return sorted(f"{prefix}/{info.base_name}" for info in self._listing(folder) if info.type == fs.FileType.File)

    def read_text(self, path: str) -> str:
        filesystem, p = self._fs(path)
        with filesystem.open_input_stream(p) as stream:
            return stream.read().decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        filesystem, p = self._fs(path)
        filesystem.create_dir(posixpath.dirname(p), recursive=True)
        with filesystem.open_output_stream(p) as stream:
            stream.write(text.encode("utf-8"))
