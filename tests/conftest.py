"""One SparkSession (Delta, UTC, local[2]) for the whole run, shared through pytest-spark."""

from __future__ import annotations

import os
import tempfile

import pytest

from featurestore_spark.session import build_session
from tests.redis_servers import PORT_BASE, redis_server

#: The Redis most tests share, started by this run (never one already running, e.g. on 6379). The
#: test modules read the port from the environment when they are imported, after this module.
MAIN_REDIS_PORT = PORT_BASE + 1
os.environ["FSSPARK_REDIS_PORT"] = str(MAIN_REDIS_PORT)

TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "4g",
    "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="fsspark-warehouse-"),
}


@pytest.fixture(scope="session")
def _spark_session():
    """Overrides pytest-spark's session so that ``spark_session`` has Delta and UTC."""
    os.environ.setdefault("FSSPARK_SPARK_MASTER", "local[2]")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = build_session("local", app_name="featurestore_spark-tests", extra_conf=TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session", autouse=True)
def main_redis(tmp_path_factory):
    with redis_server(MAIN_REDIS_PORT, tmp_path_factory.mktemp("redis-main")) as port:
        yield port


@pytest.fixture(scope="session")
def spark(spark_session):
    return spark_session
