"""``fsspark``: command-line entry point. Parses arguments and calls the library, nothing else.

    fsspark historical --entities PATH --features ride_ranking --out PATH [--full-feature-names]
    fsspark explain --entities PATH --features ride_ranking
    fsspark materialize --start 2026-01-01 --end 2026-02-01 [--views a,b]
    fsspark materialize-incremental --end 2026-02-01 [--views a,b] [--state-path PATH]
    fsspark training-set REQUEST.yaml
    fsspark training-set --reproduce OUTPUT_OR_MANIFEST --out PATH [--version N]
    fsspark training-sets list | show NAME
    fsspark freshness [--views a,b] [--at TIME] [--state-path PATH] [--fail-if-stale] [--fail-if-behind]
    fsspark ingest-stream --view V --from DELTA_OR_FOLDER [--format delta|parquet|json] --checkpoint PATH
                          [--every '1 minute' | --available-now] [--offline-only]

Exit codes: 0 done (or a stream stopped by Ctrl-C); 2 bad input, an unreachable store, or a stream that
failed otherwise; 3 some keys failed to reach Redis (rerun; for ingest-stream: run it again, it resumes
from the checkpoint); 4 a view is stale or behind, as asked by --fail-if-stale / --fail-if-behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

from featurestore_spark.errors import FeatureStoreError


def _features(value: str) -> object:
    """A service name, or comma-separated 'view:feature' references."""
    return value.split(",") if ":" in value else value


def _instant(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def report_push(reports: list) -> int:
    """Print one line per view; 3 when keys failed (they were not written: the same command again writes them)."""
    for r in reports:
        print(r.summary())
    failed = sum(r.failed for r in reports)
    if failed:
        print(f"fsspark: {failed} key(s) were not written to Redis; rerun the same command to write them "
              "(keys already written are skipped; incremental watermarks did not advance)", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fsspark", description="Spark + Delta engine for Feast feature repos")
    parser.add_argument("--repo", default="feature_repo", help="Feast repo folder (default: feature_repo)")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/ (default: local)")
    parser.add_argument("--catalog", help="training-set catalog, a Delta table (default: $FSSPARK_CATALOG or "
                        "<repo>/data/training_set_catalog)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("historical", "build a point-in-time-correct training set and write it to Delta"),
        ("explain", "show how the point-in-time join would run, and why"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--entities", required=True, help="entity rows: Delta path, table name or SQL query")
        cmd.add_argument("--features", required=True, help="a feature service, or view:feature,view:feature")
        cmd.add_argument("--full-feature-names", action="store_true", help="name outputs view__feature")
        if name == "historical":
            cmd.add_argument("--out", required=True, help="Delta path for the result (overwritten atomically)")
            cmd.add_argument("--filter-by-created-timestamp", action="store_true")
    mat = sub.add_parser("materialize", help="push the latest values in [start, end] to Redis")
    mat.add_argument("--start", required=True, type=_instant, help="ISO time (UTC if no offset)")
    mat.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    mat.add_argument("--views", default=None, help="comma-separated views (default: all online views)")
    ts = sub.add_parser("training-set", help="build a training set from a request file, or rebuild one")
    ts.add_argument("request", nargs="?", help="YAML or JSON training-set request")
    ts.add_argument("--reproduce", metavar="SOURCE", help="rebuild from a training-set table or a manifest .json")
    ts.add_argument("--out", help="with --reproduce: Delta path for the rebuilt training set")
    ts.add_argument("--version", type=int, help="with --reproduce on a table: the build that wrote this version")
    sets = sub.add_parser("training-sets", help="the catalog of training sets built")
    sets_sub = sets.add_subparsers(dest="action", required=True)
    sets_sub.add_parser("list", help="every build, newest first")
    sets_sub.add_parser("show", help="one training set in full").add_argument("name")
    inc = sub.add_parser("materialize-incremental", help="push what changed since the last run, up to end")
    inc.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    inc.add_argument("--views", default=None, help="comma-separated views (default: all online views)")
    inc.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    fresh = sub.add_parser("freshness", help="how new each view's offline rows are, and how far Redis lags")
    fresh.add_argument("--views", default=None, help="comma-separated views (default: every view)")
    fresh.add_argument("--at", type=_instant, default=None, help="measure ages at this ISO time (default: now)")
    fresh.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    fresh.add_argument("--fail-if-stale", action="store_true",
                       help="exit with status 4 when a view's newest row is older than its ttl")
    fresh.add_argument("--fail-if-behind", action="store_true",
                       help="exit with status 4 when Redis may lack rows Delta has (see the README)")
    stream = sub.add_parser("ingest-stream", help="stream rows into a view's Delta source and Redis")
    stream.add_argument("--view", required=True, help="the feature view")
    stream.add_argument("--from", dest="source", required=True,
                        help="a Delta table (path or name), or a folder of parquet or json files in the view "
                             "source's columns")
    stream.add_argument("--format", default="delta", choices=("delta", "parquet", "json"))
    stream.add_argument("--checkpoint", required=True, help="the query's checkpoint folder (keep it to resume)")
    when = stream.add_mutually_exclusive_group()
    when.add_argument("--every", default=None, help="micro-batch interval, e.g. '1 minute' (default: back to back)")
    when.add_argument("--available-now", action="store_true", help="take what is there now, then stop")
    stream.add_argument("--offline-only", action="store_true", help="append to Delta only, push nothing to Redis")
    args = parser.parse_args(argv)
    if args.command == "training-set" and (args.request is None) == (args.reproduce is None):
        parser.error("training-set takes a request file, or --reproduce SOURCE --out PATH")
    if args.command == "training-set" and args.reproduce and not args.out:
        parser.error("--reproduce needs --out PATH (where the rebuilt training set goes)")
    if args.command == "training-set" and args.request and (args.out or args.version is not None):
        parser.error("--out and --version go with --reproduce; a request names its output in output.path or "
                     "output.table")

    from featurestore_spark.store import FeatureStore

    try:
        store = FeatureStore(repo_path=args.repo, profile=args.profile, catalog=args.catalog,
                             state_path=getattr(args, "state_path", None))
        if args.command in ("training-set", "training-sets"):
            return _training_sets(store, args)
        if args.command in ("materialize", "materialize-incremental"):
            views = args.views.split(",") if args.views else None
            if args.command == "materialize":
                reports = store.materialize(args.start, args.end, views)
            else:
                reports = store.materialize_incremental(args.end, views)
            return report_push(reports)
        if args.command == "ingest-stream":
            return _ingest_stream(store, args)
        if args.command == "freshness":
            found = store.freshness(args.views.split(",") if args.views else None, args.at)
            for f in found:
                print(f.summary())
            alarm = any((args.fail_if_stale and f.stale) or (args.fail_if_behind and f.behind) for f in found)
            return 4 if alarm else 0
        if args.command == "explain":
            print(store.explain_historical_features(args.entities, _features(args.features), args.full_feature_names))
            return 0
        started = time.perf_counter()
        df = store.get_historical_features(
            args.entities, _features(args.features), full_feature_names=args.full_feature_names,
            filter_by_created_timestamp=args.filter_by_created_timestamp,
        )
        df.write.format("delta").mode("overwrite").save(args.out)
        print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
        return 0
    except (FeatureStoreError, ConnectionError) as exc:
        print(f"fsspark: error: {exc}", file=sys.stderr)
        return 2


def _ingest_stream(store: object, args: argparse.Namespace) -> int:
    """Run the stream until it stops (--available-now), is interrupted, or fails: 3 when a batch's push
    to Redis failed (run again: it resumes from the checkpoint), 2 for any other failure."""
    from pyspark.errors import AnalysisException, IllegalArgumentException, StreamingQueryException

    from featurestore_spark import delta_io

    spark = store.spark  # type: ignore[attr-defined]
    try:
        if args.format == "delta":
            reader = spark.readStream.format("delta")
            rows = reader.load(args.source) if delta_io.is_path(args.source) else reader.table(args.source)
        else:  # files carry no schema a stream can trust: take the view's source table's (it must exist)
            view = store.views([args.view])[0]  # type: ignore[attr-defined]
            schema = delta_io.read_delta(spark, view.source.address, what=f"source of feature view '{view.name}'").schema
            rows = spark.readStream.schema(schema).format(args.format).load(args.source)
        trigger = {"availableNow": True} if args.available_now else {"processingTime": args.every} if args.every else None
        query = store.ingest_stream(args.view, rows, args.checkpoint, push_online=not args.offline_only,  # type: ignore[attr-defined]
                                    trigger=trigger, query_name=f"fsspark-ingest-{args.view}")
    except (AnalysisException, IllegalArgumentException) as exc:
        print(f"fsspark: error: cannot stream {args.source} into '{args.view}': {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return 2
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
        print(f"{args.view}: stream stopped; run the same command to resume from {args.checkpoint}")
        return 0
    except StreamingQueryException as exc:
        # A failure inside a batch comes back as Spark's summary, then the Python traceback: the
        # traceback's last line names the error (ours, for a push, names view, batch and Redis's answer).
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("featurestore_spark.errors.OnlineStoreError: ")]
        if errors:
            print(f"fsspark: error: {errors[-1].split(': ', 1)[1]}", file=sys.stderr)
            return 3
        print(f"fsspark: error: the stream into '{args.view}' failed: {lines[0]}", file=sys.stderr)
        print(f"fsspark: cause: {lines[-1]}", file=sys.stderr)
        return 2
    done = [p for p in query.recentProgress if p["numInputRows"]]
    print(f"{args.view}: {sum(p['numInputRows'] for p in done)} rows in {len(done)} batch(es) (the last "
          f"{len(query.recentProgress)} progress reports); checkpoint {args.checkpoint}")
    return 0


def _training_sets(store: object, args: argparse.Namespace) -> int:
    from featurestore_spark.progress import SparkProgress
    from featurestore_spark.training import catalog

    if args.command == "training-sets":
        builds = store.training_sets(None if args.action == "list" else args.name)  # type: ignore[attr-defined]
        if args.action == "show" and not builds:
            print(f"fsspark: error: no training set named '{args.name}' in {store.catalog}", file=sys.stderr)  # type: ignore[attr-defined]
            return 2
        print(catalog.format_list(builds) if args.action == "list" else catalog.format_show(builds))
        return 0
    with SparkProgress(store.spark) as progress:  # type: ignore[attr-defined]
        if args.reproduce:
            result = store.reproduce_training_set(args.reproduce, args.out, args.version, progress.step)  # type: ignore[attr-defined]
        else:
            result = store.create_training_set(args.request, progress.step)  # type: ignore[attr-defined]
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
