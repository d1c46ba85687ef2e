"""The console log level of Spark and of this library: ``$FSSPARK_LOG_LEVEL`` (``--log-level``), else WARN.

Spark's INFO lines (hundreds per job) bury a job's own output. No heavy imports here: the CLI reads
the level before it starts Spark.
"""

from __future__ import annotations

import os

from featurestore_spark.errors import ConfigError

#: Spark's log levels.
LOG_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
#: The same levels for Python's logging.
PYTHON_LEVELS = {"ALL": "DEBUG", "TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL", "OFF": "CRITICAL"}


def log_level() -> str:
    """``$FSSPARK_LOG_LEVEL`` (upper-cased), else WARN.

    Raises:
        ConfigError: not one of ``LOG_LEVELS``.
    """
    level = os.environ.get("FSSPARK_LOG_LEVEL", "WARN").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"FSSPARK_LOG_LEVEL={level} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return level


def python_level(level: str) -> str:
    return PYTHON_LEVELS.get(level, level)
