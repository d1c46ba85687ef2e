"""spark-submit job: push the latest feature values of a window to Redis (Feast's layout).

    spark-submit jobs/materialize.py --repo feature_repo --start 2026-01-01T00:00:00 --end 2026-02-01T00:00:00
"""

import argparse
from datetime import datetime, timezone


def _instant(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--start", required=True, type=_instant, help="ISO time (UTC if no offset)")
    parser.add_argument("--end", required=True, type=_instant, help="ISO time (UTC if no offset)")
    parser.add_argument("--views", default=None, help="comma-separated feature views (default: all online views)")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    args = parser.parse_args()

    from featurestore_spark import FeatureStore

    store = FeatureStore(repo_path=args.repo, profile=args.profile)
    for r in store.materialize(args.start, args.end, args.views.split(",") if args.views else None):
        print(f"{r.view}: {r.rows} keys, {r.written} written, {r.skipped} skipped (not newer)")


if __name__ == "__main__":
    main()
