"""``fsspark``: command-line entry point. Parses and checks arguments, then calls the library.

    fsspark historical --entities PATH --features ride_ranking --out PATH [--mode error|overwrite|append]
                       [--full-feature-names]
    fsspark explain --entities PATH --features ride_ranking
    fsspark materialize --start 2026-01-01 --end 2026-02-01 [--views a,b] [--min-replicas N]
    fsspark materialize-incremental --end 2026-02-01 [--views a,b] [--state-path PATH] [--min-replicas N]
    fsspark training-set REQUEST.yaml
    fsspark training-set --reproduce OUTPUT_OR_MANIFEST --out PATH [--version N]
    fsspark training-sets list | show NAME
    fsspark freshness [--views a,b] [--at TIME] [--state-path PATH] [--fail-if-stale] [--fail-if-behind]
    fsspark ingest-stream --view V --from DELTA_OR_FOLDER [--format delta|parquet|json] --checkpoint PATH
                          [--every '1 minute' | --available-now] [--offline-only] [--min-replicas N]

Arguments, time ranges and request files are checked, and the repo loaded, before Spark starts. A
failure prints one line (``--debug``: the traceback too). Exit codes: 0 done (or a stream stopped by
Ctrl-C or SIGTERM after its batch); 1 an unexpected error; 2 bad input, an unreachable store, or a
stream that failed otherwise; 3 some keys failed to reach Redis (rerun; for ingest-stream: run it
again, it resumes from the checkpoint); 4 a view is stale or behind, as asked by --fail-if-stale /
--fail-if-behind; 5 another writer committed to the same Delta table first and this command's commit
did not happen (rerun); 130 interrupted, or a stream stopped at once by a second signal. See ``cli_errors``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone

from featurestore_spark import cli_errors
from featurestore_spark.errors import ConfigError
from featurestore_spark.log_levels import LOG_LEVELS, log_level, python_level

EXIT_CODES = """exit codes: 0 done; 1 unexpected error (--debug shows the traceback); 2 bad input or an unreachable
store; 3 keys not written to Redis (rerun); 4 stale or behind (freshness); 5 another writer committed
first, this commit did not happen (rerun); 130 interrupted"""


def _features(value: str) -> object:
    """A service name, or comma-separated 'view:feature' references."""
    return value.split(",") if ":" in value else value


def _instant(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO time; e.g. 2026-01-31, 2026-01-31T12:00:00 or 2026-01-31T12:00:00+02:00"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def count_at_least(low: int):  # noqa: ANN202 (an argparse type)
    """An argparse type: a whole number >= ``low`` (the jobs use it too)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value
    return parse


#: What Spark reads as a processing-time interval (units below a month: a trigger cannot be in months).
_INTERVAL = re.compile(r"(?i)\s*(interval\s+)?(\d+(\.\d+)?\s*(week|day|hour|minute|second|millisecond|microsecond)s?\s*)+")


def _interval(text: str) -> str:
    if not _INTERVAL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not an interval; e.g. '30 seconds', '1 minute', '1 hour'")
    return text


def report_push(reports: list) -> int:
    """Print one line per view; 3 when keys failed (they were not written: the same command again writes them)."""
    for r in reports:
        print(r.summary())
    failed = sum(r.failed for r in reports)
    if failed:
        print(f"fsspark: {failed} key(s) were not written to Redis; rerun the same command to write them "
              "(keys already written are skipped; incremental watermarks did not advance)", file=sys.stderr)
        return cli_errors.PUSH_FAILED
    return cli_errors.OK


def main(argv: list[str] | None = None, prog: str = "fsspark") -> int:
    """Runs one command; ``prog`` names the program in usage and error lines (the jobs give theirs)."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    _check(parser, args)
    _logging(args.log_level)
    return cli_errors.run(lambda: _run(args), debug=args.debug, prog=prog)


def _logging(level: str | None) -> None:
    """Spark's console level (through ``$FSSPARK_LOG_LEVEL``, which ``build_session`` reads) and this
    library's log lines (the join plan, push repairs) at the same level, on stderr."""
    if level:
        os.environ["FSSPARK_LOG_LEVEL"] = level
    try:
        spark_level = log_level()
    except ConfigError as exc:  # a bad $FSSPARK_LOG_LEVEL: one line and exit 2, as for any bad setting
        print(f"fsspark: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=python_level(spark_level), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featurestore_spark")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _options(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name: with their defaults for the main
    parser, without them for a command's parser (so that a value given before the name stays)."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--repo", default=default("feature_repo"), help="Feast repo folder (default: feature_repo)")
    options.add_argument("--profile", default=default("local"),
                         help="Spark profile: local (default), cluster, connect, or one in $FSSPARK_CONF_DIR "
                              "(spark-submit's --master wins)")
    options.add_argument("--catalog", default=default(None), help="training-set catalog, a Delta table (default: "
                         "$FSSPARK_CATALOG or <repo>/data/training_set_catalog)")
    options.add_argument("--debug", action="store_true", default=default(False), help="on failure, print the traceback too")
    options.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=default(None),
                         help="Spark's and this library's console log level (default: $FSSPARK_LOG_LEVEL or WARN)")
    return options


def _parser(prog: str = "fsspark") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Spark + Delta engine for Feast feature repos",
                                     epilog=EXIT_CODES, parents=[_options(defaults=True)])
    parser.add_argument("--version", action="version", version=f"fsspark {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    command_options = _options(defaults=False)

    def add_command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[command_options])

    for name, help_text in (
        ("historical", "build a point-in-time-correct training set and write it to Delta"),
        ("explain", "show how the point-in-time join would run, and why"),
    ):
        cmd = add_command(name, help_text)
        cmd.add_argument("--entities", required=True, help="entity rows: Delta path, table name or SQL query")
        cmd.add_argument("--features", required=True, help="a feature service, or view:feature,view:feature")
        cmd.add_argument("--full-feature-names", action="store_true", help="name outputs view__feature")
        if name == "historical":
            cmd.add_argument("--out", required=True, help="Delta path for the result (written in one commit)")
            cmd.add_argument("--mode", default="error", choices=("error", "overwrite", "append"),
                             help="error (default): fail if --out exists; overwrite: replace it (earlier versions "
                                  "stay readable by time travel); append: add the rows (same columns)")
            cmd.add_argument("--filter-by-created-timestamp", action="store_true")
    mat = add_command("materialize", "push the latest values in [start, end] to Redis")
    mat.add_argument("--start", required=True, type=_instant, help="ISO time (UTC if no offset)")
    mat.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset), after --start")
    mat.add_argument("--views", default=None, help="comma-separated views (default: all online views)")
    ts = add_command("training-set", "build a training set from a request file, or rebuild one")
    ts.add_argument("request", nargs="?", help="YAML or JSON training-set request")
    ts.add_argument("--request", dest="request_option", metavar="REQUEST", help="the same, as an option (the job's form)")
    ts.add_argument("--reproduce", metavar="SOURCE", help="rebuild from a training-set table or a manifest .json")
    ts.add_argument("--out", help="with --reproduce: Delta path for the rebuilt training set")
    ts.add_argument("--version", type=count_at_least(0), help="with --reproduce on a table: the build that wrote this version")
    sets = add_command("training-sets", "the catalog of training sets built")
    sets_sub = sets.add_subparsers(dest="action", required=True)
    sets_sub.add_parser("list", help="every build, newest first", parents=[command_options])
    sets_sub.add_parser("show", help="one training set in full", parents=[command_options]).add_argument("name")
    inc = add_command("materialize-incremental", "push what changed since the last run, up to end")
    inc.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    inc.add_argument("--views", default=None, help="comma-separated views (default: all online views)")
    inc.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    fresh = add_command("freshness", "how new each view's offline rows are, and how far Redis lags")
    fresh.add_argument("--views", default=None, help="comma-separated views (default: every view)")
    fresh.add_argument("--at", type=_instant, default=None, help="measure ages at this ISO time (default: now)")
    fresh.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    fresh.add_argument("--fail-if-stale", action="store_true",
                       help="exit with status 4 when a view's newest row is older than its ttl")
    fresh.add_argument("--fail-if-behind", action="store_true",
                       help="exit with status 4 when Redis may lack rows Delta has (see docs/operations.md)")
    stream = add_command("ingest-stream", "stream rows into a view's Delta source and Redis")
    stream.add_argument("--view", required=True, help="the feature view")
    stream.add_argument("--from", dest="source", default=None,
                        help="a Delta table (path or name), or a folder of parquet or json files in the view "
                             "source's columns (or --kafka-bootstrap and --topic)")
    stream.add_argument("--format", default=None, choices=("delta", "parquet", "json"),
                        help="of --from (default: delta)")
    kafka = stream.add_argument_group("Kafka (instead of --from)")
    kafka.add_argument("--kafka-bootstrap", metavar="HOST:PORT[,HOST:PORT]", help="the brokers")
    kafka.add_argument("--topic", help="the topic (or comma-separated topics)")
    kafka.add_argument("--starting-offsets", default="earliest",
                       help="where a new query starts: earliest (default), latest or Spark's JSON form; a restart "
                            "resumes from the checkpoint")
    kafka.add_argument("--value-format", default="json", choices=("json", "avro"),
                       help="record values: JSON objects (default) or Avro records of the source's columns")
    kafka.add_argument("--avro-schema", metavar="FILE|JSON", help="with --value-format avro: the record schema")
    kafka.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                       help="passed to Spark's Kafka source (e.g. kafka.security.protocol=SASL_SSL); repeatable; "
                            "${VAR} in a value is taken from the environment, so secrets stay off the command line")
    stream.add_argument("--checkpoint", required=True, help="the query's checkpoint folder (keep it to resume)")
    when = stream.add_mutually_exclusive_group()
    when.add_argument("--every", default=None, type=_interval,
                      help="micro-batch interval, e.g. '1 minute' (default: back to back)")
    when.add_argument("--available-now", action="store_true", help="take what is there now, then stop")
    stream.add_argument("--offline-only", action="store_true", help="append to Delta only, push nothing to Redis")
    for cmd in (mat, inc, stream):
        cmd.add_argument("--min-replicas", type=count_at_least(0), default=0,
                         help="count keys written only once this many replicas acknowledged them (default: 0)")
    return parser


#: ``${NAME}`` in a Kafka option's value: taken from the environment (a bare ``$`` stays as it is).
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _check_stream(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``ingest-stream`` reads --from, or a Kafka topic; Kafka options are KEY=VALUE with set variables."""
    if (args.source is None) == (args.kafka_bootstrap is None):
        parser.error("ingest-stream reads --from SOURCE, or --kafka-bootstrap HOST:PORT --topic TOPIC")
    if args.kafka_bootstrap is None:
        if args.topic or args.kafka_option or args.avro_schema or args.value_format != "json" \
                or args.starting_offsets != "earliest":
            parser.error("--topic, --kafka-option, --value-format, --avro-schema and --starting-offsets go with "
                         "--kafka-bootstrap")
        args.format = args.format or "delta"
        return
    if args.format:
        parser.error("--format is for --from; Kafka values are read with --value-format")
    if not args.topic:
        parser.error("--kafka-bootstrap needs --topic")
    if args.value_format == "avro" and not args.avro_schema:
        parser.error("--value-format avro needs --avro-schema FILE.avsc (or the schema as JSON)")
    options = {}
    for number, option in enumerate(args.kafka_option, start=1):
        key, sep, value = option.partition("=")
        if not sep or not key:  # never echo it: it may be a secret pasted whole
            parser.error(f"--kafka-option number {number} is not KEY=VALUE")
        unset = [name for name in _VARIABLE.findall(value) if name not in os.environ]
        if unset:  # never echo the value: it may hold a secret
            parser.error(f"--kafka-option {key} uses a ${{VARIABLE}} that is not set ({', '.join(unset)}); export it")
        options[key] = _VARIABLE.sub(lambda m: os.environ[m.group(1)], value)
    args.kafka_options = options


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argument combinations argparse cannot express (exits 2, before Spark starts)."""
    if args.command == "materialize" and args.start >= args.end:
        parser.error(f"--start {args.start.isoformat()} is not before --end {args.end.isoformat()}; "
                     "materialize pushes the rows of [start, end]")
    if args.command == "ingest-stream":
        _check_stream(parser, args)
    if args.command == "training-set" and args.request_option is not None:
        if args.request is not None:
            parser.error("give the request once: as the argument or as --request")
        args.request = args.request_option
    if args.command == "training-set" and (args.request is None) == (args.reproduce is None):
        parser.error("training-set takes a request file, or --reproduce SOURCE --out PATH")
    if args.command == "training-set" and args.reproduce and not args.out:
        parser.error("--reproduce needs --out PATH (where the rebuilt training set goes)")
    if args.command == "training-set" and args.request and (args.out or args.version is not None):
        parser.error("--out and --version go with --reproduce; a request names its output in output.path or "
                     "output.table")


def _run(args: argparse.Namespace) -> int:
    # A request file is read and checked, and the repo loaded (by FeatureStore), before the session starts.
    request = None
    if args.command == "training-set" and args.request:
        from featurestore_spark.training.request import load_request

        request = load_request(args.request)
    from featurestore_spark.store import FeatureStore

    store = FeatureStore(repo_path=args.repo, profile=args.profile, catalog=args.catalog,
                         state_path=getattr(args, "state_path", None))
    if args.command in ("training-set", "training-sets"):
        return _training_sets(store, args, request)
    if args.command == "materialize":
        return report_push(store.materialize(args.start, args.end, _views(args), min_replicas=args.min_replicas))
    if args.command == "materialize-incremental":
        return report_push(store.materialize_incremental(args.end, _views(args), min_replicas=args.min_replicas))
    if args.command == "ingest-stream":
        from featurestore_spark.cli_stream import ingest_stream

        return ingest_stream(store, args)
    if args.command == "freshness":
        found = store.freshness(_views(args), args.at)
        for f in found:
            print(f.summary())
        alarm = any((args.fail_if_stale and f.stale) or (args.fail_if_behind and f.behind) for f in found)
        return cli_errors.ALARM if alarm else cli_errors.OK
    if args.command == "explain":
        print(store.explain_historical_features(args.entities, _features(args.features), args.full_feature_names))
        return cli_errors.OK
    return _historical(store, args)


def _views(args: argparse.Namespace) -> list[str] | None:
    return args.views.split(",") if args.views else None


def _historical(store: object, args: argparse.Namespace) -> int:
    """The join written to --out in one commit, under the training-set output rules (``training.output``)."""
    from featurestore_spark import delta_io
    from featurestore_spark.training import output
    from featurestore_spark.training.request import Output

    spark = store.spark  # type: ignore[attr-defined]
    started = time.perf_counter()
    out = Output(path=args.out, mode=args.mode)
    output.check_output(spark, out, mode_setting="--mode")
    df = store.get_historical_features(  # type: ignore[attr-defined]
        args.entities, _features(args.features), full_feature_names=args.full_feature_names,
        filter_by_created_timestamp=args.filter_by_created_timestamp,
    )
    output.write(spark, output.in_table_order(spark, df, out, mode_setting="--mode"), out)
    version = delta_io.latest_version(spark, out.location, what="--out")
    print(f"wrote {out.location} (Delta version {version}, --mode {args.mode}) in {time.perf_counter() - started:.1f} s")
    return cli_errors.OK


def _training_sets(store: object, args: argparse.Namespace, request: object) -> int:
    from featurestore_spark.progress import SparkProgress
    from featurestore_spark.training import catalog

    if args.command == "training-sets":
        builds = store.training_sets(None if args.action == "list" else args.name)  # type: ignore[attr-defined]
        if args.action == "show" and not builds:
            print(f"fsspark: error: no training set named '{args.name}' in {store.catalog}", file=sys.stderr)  # type: ignore[attr-defined]
            return cli_errors.BAD_INPUT
        print(catalog.format_list(builds) if args.action == "list" else catalog.format_show(builds))
        return 0
    with SparkProgress(store.spark) as progress:  # type: ignore[attr-defined]
        if args.reproduce:
            result = store.reproduce_training_set(args.reproduce, args.out, args.version, progress.step)  # type: ignore[attr-defined]
        else:
            result = store.create_training_set(request, progress.step)  # type: ignore[attr-defined]
    print(result.summary())
    return cli_errors.OK


if __name__ == "__main__":
    sys.exit(main())
