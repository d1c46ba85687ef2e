"""``fsspark ingest-stream``: run a streaming query until it ends, fails, or a signal stops it.

SIGINT (Ctrl-C) or SIGTERM stops the query once its current micro-batch is done: the batch is appended,
pushed and recorded in the checkpoint, and the command exits 0. A second signal stops it at once (exit
130): a batch in flight is not recorded in the checkpoint and runs again when the command is run again
(its Delta append is not repeated, its push is newer-wins). The signal only sets a flag: the main thread
stops the query between batches, so neither Python nor Spark's stream thread is interrupted mid-call.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from featurestore_spark.cli_errors import BAD_INPUT, INTERRUPTED, OK, PUSH_FAILED

#: How often (seconds) the main thread looks at the query and the signals.
_POLL = 0.5


class _Signals:
    """SIGINT and SIGTERM counted instead of acted on, while in use (main thread only; elsewhere no handler)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._before: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._before[sig] = signal.signal(sig, self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _count(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)


def ingest_stream(store: object, args: argparse.Namespace) -> int:
    """Start the stream and wait for it: 0 when it ended or a signal stopped it after a batch, 130 when a
    second signal stopped it at once, 3 when a batch's push to Redis failed (run again: it resumes from
    the checkpoint), 2 for any other failure."""
    from pyspark.errors import AnalysisException, IllegalArgumentException

    from featurestore_spark import delta_io

    origin = args.source or f"Kafka topic {args.topic} at {args.kafka_bootstrap}"

    def cannot(why: str) -> int:
        print(f"fsspark: error: cannot stream {origin} into '{args.view}': {why}", file=sys.stderr)
        return BAD_INPUT

    if args.source and delta_io.is_path(args.source) and not delta_io.path_exists(store.spark, args.source):  # type: ignore[attr-defined]
        return cannot(f"'{args.source}' does not exist; check the path")
    with _Signals() as signals:
        try:
            query = _start(store, args)
        except (AnalysisException, IllegalArgumentException) as exc:
            return cannot(str(exc).splitlines()[0])
        return _wait(store.spark, query, signals, args)  # type: ignore[attr-defined]


def _start(store: object, args: argparse.Namespace):  # -> StreamingQuery
    from featurestore_spark import delta_io

    spark = store.spark  # type: ignore[attr-defined]
    if args.kafka_bootstrap:
        from featurestore_spark.kafka_source import KafkaSource

        rows = KafkaSource(args.kafka_bootstrap, args.topic, value_format=args.value_format, avro_schema=args.avro_schema,
                           starting_offsets=args.starting_offsets, options=args.kafka_options)
    elif args.format == "delta":
        reader = spark.readStream.format("delta")
        rows = reader.load(args.source) if delta_io.is_path(args.source) else reader.table(args.source)
    else:  # files carry no schema a stream can trust: take the view's source table's (it must exist)
        view = store.views([args.view])[0]  # type: ignore[attr-defined]
        schema = delta_io.read_delta(spark, view.source.address, what=f"source of feature view '{view.name}'").schema
        rows = spark.readStream.schema(schema).format(args.format).load(args.source)
    trigger = {"availableNow": True} if args.available_now else {"processingTime": args.every} if args.every else None
    return store.ingest_stream(args.view, rows, args.checkpoint, push_online=not args.offline_only,  # type: ignore[attr-defined]
                               trigger=trigger, query_name=f"fsspark-ingest-{args.view}",
                               min_replicas=args.min_replicas)


def _wait(spark: object, query: object, signals: _Signals, args: argparse.Namespace) -> int:
    from pyspark.errors import StreamingQueryException

    told = False
    try:
        while not query.awaitTermination(_POLL):  # type: ignore[attr-defined]
            if len(signals.received) >= 2:
                _stop(spark, query)
                print(f"{args.view}: stream stopped at once ({' then '.join(signals.received[:2])}); a batch it was "
                      f"running runs again when you run the same command, which resumes from {args.checkpoint}")
                return INTERRUPTED
            if signals.received and not query.status["isTriggerActive"]:  # type: ignore[attr-defined]
                _stop(spark, query)
                print(f"{args.view}: stream stopped ({signals.received[0]}) after {_taken(query)}; run the same "
                      f"command to resume from {args.checkpoint}")
                return OK
            if signals.received and not told:
                print(f"{args.view}: stopping after the current batch ({signals.received[0]}; send it again to stop "
                      "at once)", file=sys.stderr)
                told = True
    except StreamingQueryException as exc:
        return _failed(exc, args)
    print(f"{args.view}: {_taken(query)}; checkpoint {args.checkpoint}")
    return OK


def _taken(query: object) -> str:
    done = [p for p in query.recentProgress if p["numInputRows"]]  # type: ignore[attr-defined]
    return (f"{sum(p['numInputRows'] for p in done)} rows in {len(done)} batch(es) (the last "
            f"{len(query.recentProgress)} progress reports)")  # type: ignore[attr-defined]


def _stop(spark: object, query: object) -> None:
    """Stop the query quietly: a stop that interrupts a batch makes Spark and py4j report the interruption
    as errors (the stream thread can even die of a StackOverflowError, matching the Python traceback
    against a regex, printed straight to the JVM's stderr until ``stop`` has joined it), and the
    scheduler reports the cancelled jobs later, from its own thread. The command ends after the stop,
    so Spark's and py4j's logs stay off from here on."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    logging.getLogger("py4j").setLevel(logging.CRITICAL + 1)
    log4j = jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setRootLevel(log4j.Level.OFF)
    err = jvm.java.lang.System.err
    jvm.java.lang.System.setErr(jvm.java.io.PrintStream(jvm.java.io.OutputStream.nullOutputStream()))
    try:
        query.stop()  # type: ignore[attr-defined]
    finally:
        jvm.java.lang.System.setErr(err)


def _failed(exc: Exception, args: argparse.Namespace) -> int:
    # A failure inside a batch comes back as Spark's summary, then the Python traceback: the
    # traceback's last line names the error (ours, for a push, names view, batch and Redis's answer).
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("featurestore_spark.errors.OnlineStoreError: ")]
    if errors:
        print(f"fsspark: error: {errors[-1].split(': ', 1)[1]}", file=sys.stderr)
        return PUSH_FAILED
    print(f"fsspark: error: the stream into '{args.view}' failed: {lines[0]}", file=sys.stderr)
    print(f"fsspark: cause: {lines[-1]}", file=sys.stderr)
    return BAD_INPUT
