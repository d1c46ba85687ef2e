"""spark-submit job: push the latest feature values of a window to Redis (Feast's layout).

    spark-submit jobs/materialize.py --repo feature_repo --start 2026-01-01T00:00:00 --end 2026-02-01T00:00:00
    spark-submit jobs/materialize.py --repo feature_repo --incremental --end 2026-02-01T00:00:00

Exits 3 when some keys could not be written (rerun the same command).
"""

import argparse
import sys
from datetime import datetime, timezone


def _instant(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--start", type=_instant, help="ISO time (UTC if no offset); not with --incremental")
    parser.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    parser.add_argument("--views", default=None, help="comma-separated feature views (default: all online views)")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    parser.add_argument("--incremental", action="store_true", help="from each view's watermark to --end")
    parser.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    args = parser.parse_args()
    if args.incremental == (args.start is not None):
        parser.error("give either --start (a window) or --incremental")

    from featurestore_spark import FeatureStore
    from featurestore_spark.cli import report_push

    store = FeatureStore(repo_path=args.repo, profile=args.profile, state_path=args.state_path)
    views = args.views.split(",") if args.views else None
    if args.incremental:
        reports = store.materialize_incremental(args.end, views)
    else:
        reports = store.materialize(args.start, args.end, views)
    sys.exit(report_push(reports))


if __name__ == "__main__":
    main()
