"""What ``fsspark`` and the spark-submit jobs print and return when a command fails: one line and an exit code.

Every failure is mapped here, in one place: the library's errors and unreachable stores (bad input),
Spark's analysis and parse errors (bad input), Delta's commit conflicts (a lost race: rerun), Ctrl-C;
anything else is unexpected (a bug), and ``--debug`` prints its traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable

from featurestore_spark import delta_io
from featurestore_spark.errors import ConcurrentWriteError, FeatureStoreError

OK = 0
UNEXPECTED = 1  # a bug: ``--debug`` shows the traceback
BAD_INPUT = 2  # arguments, request, repo, tables or SQL; an unreachable store; a stream that failed
PUSH_FAILED = 3  # some keys were not written to Redis: run the same command again
ALARM = 4  # a view is stale or behind (``freshness --fail-if-stale`` / ``--fail-if-behind``)
LOST_RACE = 5  # another writer committed to the same Delta table first; this commit did not happen: rerun
INTERRUPTED = 130  # Ctrl-C, or a stream stopped at once by a second signal


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the line to print (without the program's name) for an exception."""
    from pyspark.errors import AnalysisException, ParseException

    if isinstance(exc, ConcurrentWriteError):
        return LOST_RACE, f"error: {exc}"
    if _jvm_gone(exc):
        return UNEXPECTED, ("error: the Spark driver's JVM stopped answering (killed, or out of memory: see Spark's "
                            "log above); the step it was running may have partly run (builds commit once, pushes are "
                            "newer-wins): run the same command again")
    if isinstance(exc, (FeatureStoreError, ConnectionError)):
        return BAD_INPUT, f"error: {exc}"
    conflict = delta_io.commit_conflict(exc)
    if conflict is not None:
        return LOST_RACE, (f"error: another writer committed to a Delta table this command writes ({conflict}: "
                           f"{first_line(exc)}); the conflicting commit did not happen: run the same command again")
    if isinstance(exc, ParseException):
        return BAD_INPUT, f"error: Spark cannot parse the SQL: {first_line(exc)}; fix the query"
    if isinstance(exc, AnalysisException):
        return BAD_INPUT, f"error: Spark cannot run this: {first_line(exc)}; check the tables, columns and paths it names"
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    return UNEXPECTED, f"unexpected error: {type(exc).__name__}: {first_line(exc)} (run with --debug for the traceback)"


def _jvm_gone(exc: BaseException) -> bool:
    """A lost connection to the driver's JVM (py4j's), not a store's: the JVM died under the command."""
    from py4j.protocol import Py4JNetworkError

    if isinstance(exc, Py4JNetworkError):
        return True
    return isinstance(exc, ConnectionError) and any(
        "py4j" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def report(exc: BaseException, *, debug: bool, prog: str = "fsspark") -> int:
    """Print the exception's line (after its traceback, with ``debug``) to stderr; return its exit code."""
    code, line = describe(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"{prog}: {line}", file=sys.stderr)
    return code


#: PySpark's loggers that print an analysis error (as JSON, with the Java stack trace) when it is raised:
#: the entry points report it themselves, in one line.
_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def run(command: Callable[[], int | None], *, debug: bool, prog: str) -> int:
    """Run an entry point's ``command``: its exit code (0 for None), or a failure's line and code."""
    loggers = [logging.getLogger(name) for name in _ERROR_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)
    try:
        return command() or OK
    except (Exception, KeyboardInterrupt) as exc:  # every failure gets its line and code; --debug adds the traceback
        return report(exc, debug=debug, prog=prog)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def first_line(exc: BaseException) -> str:
    """The first non-blank line of the exception's text (Spark's put the condition there), at most 400 characters."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), "")
    return line if len(line) <= 400 else line[:397] + "..."
