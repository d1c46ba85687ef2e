"""What the session in hand is and offers: a classic session (with a JVM and ``sparkContext``) or a
Spark Connect client (neither; every call goes to the server as a plan or SQL).

Library code asks here instead of touching ``sparkContext``, so that it runs on both.
"""

from __future__ import annotations

import functools

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client session."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def master(spark: SparkSession) -> str:
    """The master URL the session's application runs on ("local[*]", "spark://...", "yarn", ...)."""
    if is_connect(spark):
        return str(spark.conf.get("spark.master", "") or "")
    return str(spark.sparkContext.master)


def default_parallelism(spark: SparkSession) -> int:
    """How many tasks the cluster runs at once by default (its cores, unless configured)."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    return _connect_parallelism(spark)


@functools.lru_cache(maxsize=16)
def _connect_parallelism(spark: SparkSession) -> int:
    """Over Connect, once per session: a range gets the default parallelism as its partition count (a
    tiny job; there is no sparkContext to ask)."""
    parts = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("part")).agg(F.max("part"))
    return int(parts.collect()[0][0]) + 1
