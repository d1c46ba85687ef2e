"""``fsspark``: command-line entry point. Parses arguments and calls the library, nothing else.

    fsspark historical --entities PATH --features ride_ranking --out PATH [--full-feature-names]
    fsspark explain --entities PATH --features ride_ranking
    fsspark materialize --start 2026-01-01 --end 2026-02-01 [--views a,b]
    fsspark materialize-incremental --end 2026-02-01 [--views a,b] [--state-path PATH]

Exit codes: 0 done; 2 bad input or unreachable store; 3 some keys failed to reach Redis (rerun).
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
    inc = sub.add_parser("materialize-incremental", help="push what changed since the last run, up to end")
    inc.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    inc.add_argument("--views", default=None, help="comma-separated views (default: all online views)")
    inc.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    args = parser.parse_args(argv)

    from featurestore_spark.store import FeatureStore

    try:
        store = FeatureStore(repo_path=args.repo, profile=args.profile, state_path=getattr(args, "state_path", None))
        if args.command in ("materialize", "materialize-incremental"):
            views = args.views.split(",") if args.views else None
            if args.command == "materialize":
                reports = store.materialize(args.start, args.end, views)
            else:
                reports = store.materialize_incremental(args.end, views)
            return report_push(reports)
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


if __name__ == "__main__":
    sys.exit(main())
