"""Build a SparkSession with Delta Lake and UTC, from a profile (``profiles/`` in this package, or
``$FSSPARK_CONF_DIR``).

Only entry points (jobs, CLI, and ``FeatureStore`` when given no session) call this;
library code takes the session as a parameter.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyspark
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from featurestore_spark.errors import ConfigError
from featurestore_spark.log_levels import log_level
from featurestore_spark.runtime import is_connect

#: The source checkout this package runs from, when it does (an editable install); the profiles ship
#: inside the package, so that a wheel finds them too.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROFILES = Path(__file__).resolve().parent / "profiles"

#: Delta artifact coordinates matching the pinned delta-spark / pyspark (see scripts/setup.sh).
DELTA_VERSION = version("delta-spark")  # the pinned Python package; its JVM jars carry the same number
SPARK_MINOR = ".".join(pyspark.__version__.split(".")[:2])
DELTA_PACKAGES = (f"io.delta:delta-spark_{SPARK_MINOR}_2.13:{DELTA_VERSION}", f"io.delta:delta-storage:{DELTA_VERSION}")

#: Spark's Kafka connector and what it needs beyond Spark's own jars (scripts/setup.sh fetches them).
KAFKA_JARS = ("spark-sql-kafka-0-10_*.jar", "spark-token-provider-kafka-0-10_*.jar", "kafka-clients-*.jar",
              "commons-pool2-*.jar", "spark-avro_*.jar")

_ALWAYS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Timestamps are instants; the session and the JVMs read and print them in UTC.
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}


class Profile(BaseModel):
    """A Spark profile file (``<name>.yaml``). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    master: str | None = Field(None, description="Spark master URL; null leaves it to spark-submit.")
    remote: str | None = Field(
        None, description="Spark Connect URL (sc://host:port); when set (or $SPARK_REMOTE is), the session is a "
                          "Connect client and master, jars_dir and static settings belong to the server.")
    jars_dir: str | None = Field(
        None, description="Folder with the Delta jars; a relative one is looked for in the source checkout, then the "
                          "current folder; $FSSPARK_JARS_DIR wins. null: spark-submit provides them."
    )
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")


def load_profile(name: str = "local", conf_dir: str | Path | None = None) -> Profile:
    """Read ``<conf_dir>/<name>.yaml`` (conf_dir: argument, else $FSSPARK_CONF_DIR, else the profiles that
    ship in this package: local, cluster, connect)."""
    folder = Path(conf_dir or os.environ.get("FSSPARK_CONF_DIR") or PROFILES)
    file = folder / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"no Spark profile '{name}' in {folder} (profiles: {', '.join(known) or 'none'})")
    try:
        return Profile(**(yaml.safe_load(file.read_text()) or {}))
    except ValidationError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def build_session(
    profile: str = "local",
    *,
    app_name: str = "featurestore_spark",
    conf_dir: str | Path | None = None,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Get or create a SparkSession configured for Delta Lake and UTC.

    Args:
        profile: name of a profile ("local", "cluster", "connect", or one in ``conf_dir``).
        app_name: Spark application name.
        conf_dir: folder of profile files (default: $FSSPARK_CONF_DIR or this package's profiles).
        extra_conf: settings applied last, over the profile.

    Example:
        >>> spark = build_session("local")  # doctest: +SKIP
    """
    prof = load_profile(profile, conf_dir)
    remote = os.environ.get("SPARK_REMOTE") or prof.remote
    if remote and remote.startswith("sc://"):  # (SPARK_REMOTE=local is PySpark's own local Connect server)
        return connect_session(remote, app_name=app_name, conf=extra_conf)
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit (PYSPARK_GATEWAY_PORT is set) its --master rules, whatever the profile says.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    if prof.master and not submitted:
        builder = builder.master(os.environ.get("FSSPARK_SPARK_MASTER", prof.master))
    conf = {**prof.spark_conf, **_jar_conf(prof), **_ALWAYS, **(extra_conf or {})}
    if prof.master and prof.master.startswith("local"):
        # Local Python workers use this interpreter (the one with the project's packages); PySpark
        # reads the variable when the context starts. On a cluster spark-submit's settings rule.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    created = SparkSession.getActiveSession() is None
    if created:
        if submitted:  # spark-submit's --master is a system property of the JVM it started
            SparkContext._ensure_initialized()
            check_master(SparkConf().get("spark.master", ""))
        elif prof.master:
            check_master(os.environ.get("FSSPARK_SPARK_MASTER", prof.master))
    spark = builder.getOrCreate()
    if is_connect(spark):  # spark.api.mode=connect: a Connect client after all, without a JVM here
        return spark
    # The console level is this call's to set on a session it created, or when asked for explicitly; a
    # notebook's session keeps the level its user chose.
    if created or "FSSPARK_LOG_LEVEL" in os.environ:
        spark.sparkContext.setLogLevel(log_level())
    if created:
        check_delta_classes(spark)
    return spark


def check_delta_classes(spark: SparkSession) -> None:
    """Fail, naming the fix, when Delta Lake's classes are not on the driver's classpath: Spark only logs
    a warning then, and the first Delta read fails deep in a stack trace. Under spark-submit the jars
    must come from its own --packages or --jars (a session's spark.jars reaches a JVM already started
    only as files for the executors).

    Raises:
        ConfigError: the Delta session extension cannot be loaded.
    """
    from py4j.protocol import Py4JError, Py4JJavaError

    try:
        loader = spark.sparkContext._jvm.org.apache.spark.util.Utils.getContextOrSparkClassLoader()  # type: ignore[union-attr]
        loader.loadClass(_ALWAYS["spark.sql.extensions"])
    except Py4JJavaError:  # ClassNotFoundException
        raise ConfigError(
            "Delta Lake's classes are not on the Spark driver's classpath; pass the Delta jars to spark-submit: "
            f"--packages {','.join(DELTA_PACKAGES)} (or --jars with the two jars, which scripts/setup.sh caches in "
            ".cache/jars)") from None
    except Py4JError:  # py4j access restricted (shared clusters): Delta's own errors will have to do
        return


def connect_session(url: str, *, app_name: str = "featurestore_spark", conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark Connect client session to ``url`` (``sc://host:port[/;params]``), in UTC.

    The server must load Delta (its ``spark.sql.extensions`` and ``spark.jars``, as ``scripts/connect.sh``
    starts it); the client sets runtime settings only.

    Raises:
        ConfigError: nothing accepts a connection at the URL's address within ``MASTER_TIMEOUT_SECONDS``.
    """
    address = url.removeprefix("sc://").split("/", 1)[0].split(";", 1)[0]
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "15002")
    if not _answers(host or "localhost", port):
        raise ConfigError(f"the Spark Connect server at sc://{host}:{port} does not answer (no connection within "
                          f"{MASTER_TIMEOUT_SECONDS} s); start it (scripts/connect.sh start on this machine) or fix "
                          "the URL ($SPARK_REMOTE or the profile's remote)") from None
    spark = SparkSession.builder.remote(url).appName(app_name).getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    for key, value in (conf or {}).items():
        spark.conf.set(key, value)
    return spark


#: How long the standalone master may take to accept a connection before the session is not built.
MASTER_TIMEOUT_SECONDS = 10


def check_master(url: str) -> None:
    """Fail fast, naming the URL, when a standalone master (``spark://host:port[,host:port]``) does not
    accept connections: Spark itself retries for a minute and then stops the JVM with a log line.

    Raises:
        ConfigError: no master of the URL accepts a TCP connection within ``MASTER_TIMEOUT_SECONDS``.
    """
    if not url.startswith("spark://"):
        return  # local, YARN, Kubernetes: Spark's own errors are prompt
    for address in url.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if _answers(host, port):
            return
    raise ConfigError(f"the Spark master {url} does not answer (no connection within {MASTER_TIMEOUT_SECONDS} s); "
                      "start it (scripts/cluster.sh start on this machine) or pass the right --master")


def _answers(host: str, port: str) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` within ``MASTER_TIMEOUT_SECONDS``
    (a port that is not a number does not)."""
    try:
        with socket.create_connection((host, int(port)), timeout=MASTER_TIMEOUT_SECONDS):
            return True
    except (OSError, ValueError):
        return False


def _jar_conf(prof: Profile) -> dict[str, str]:
    if prof.jars_dir is None:
        return {}
    given = os.environ.get("FSSPARK_JARS_DIR") or prof.jars_dir
    for folder in [Path(given)] if Path(given).is_absolute() else [PROJECT_ROOT / given, Path.cwd() / given]:
        jars = sorted(folder.glob("delta-*.jar")) if folder.is_dir() else []
        if jars:  # and Spark's Kafka connector, when setup.sh fetched it there too
            jars += [j for pattern in KAFKA_JARS for j in sorted(folder.glob(pattern))]
            return {"spark.jars": ",".join(str(j) for j in jars)}
    # No cached jars (setup not run): let Spark resolve them through Ivy, which needs Maven Central.
    return {"spark.jars.packages": ",".join(DELTA_PACKAGES)}


def check_utc(spark: SparkSession) -> None:
    """Fail unless the session reads timestamps in UTC (docs/semantics.md section 1.5).

    A ``timestamp_ntz`` column is read as an instant in the session's time zone: in any other zone
    than UTC its rows would shift against the others by the zone's offset, and a feature row up to that
    offset in the future could be joined.

    Raises:
        ConfigError: ``spark.sql.session.timeZone`` is not UTC (or a zone always at offset 0).
    """
    zone = spark.conf.get("spark.sql.session.timeZone") or ""
    if not _is_utc(zone):
        raise ConfigError(
            f"the Spark session's time zone (spark.sql.session.timeZone) is {zone}; the engine compares "
            "timestamps as UTC instants: spark.conf.set('spark.sql.session.timeZone', 'UTC') first, or build "
            "the session with featurestore_spark.build_session"
        )


def _is_utc(zone: str) -> bool:
    if re.fullmatch(r"(?i)z|(utc|gmt|ut)?([+-]0{1,2}(:?00){0,2})?", zone) and zone:
        return True
    try:
        tz = ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return all(tz.utcoffset(datetime(y, m, 1)) == timedelta(0) for y in (1970, 2000, 2026) for m in (1, 7))
