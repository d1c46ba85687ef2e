"""spark-submit job: push the latest feature values of a window to Redis (Feast's layout).

    spark-submit jobs/materialize.py --repo feature_repo --start 2026-01-01T00:00:00 --end 2026-02-01T00:00:00
    spark-submit jobs/materialize.py --repo feature_repo --incremental --end 2026-02-01T00:00:00

The same code path as ``fsspark materialize`` / ``fsspark materialize-incremental``, checked before
Spark starts (--start before --end). Exits 2 on bad input or an unreachable store, 3 when some keys
could not be written (rerun the same command), 5 when another writer committed to a Delta table it writes first (rerun).
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--start", help="ISO time (UTC if no offset); not with --incremental")
    parser.add_argument("--end", required=True, help="ISO time (UTC if no offset)")
    parser.add_argument("--views", default=None, help="comma-separated feature views (default: all online views)")
    parser.add_argument("--profile", default="local",
                        help="Spark profile: local, cluster, connect, or one in $FSSPARK_CONF_DIR (spark-submit's --master wins)")
    parser.add_argument("--incremental", action="store_true", help="from each view's watermark to --end")
    parser.add_argument("--state-path", default=None, help="Delta table of watermarks (default: next to the registry)")
    parser.add_argument("--min-replicas", default="0", help="count keys written once this many replicas acknowledged them")
    parser.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    args = parser.parse_args()
    if args.incremental == (args.start is not None):
        parser.error("give either --start (a window) or --incremental")

    from featurestore_spark import cli

    argv = ["--repo", args.repo, "--profile", args.profile] + (["--debug"] if args.debug else [])
    if args.incremental:
        argv += ["materialize-incremental", "--end", args.end]
        argv += ["--state-path", args.state_path] if args.state_path else []
    else:
        argv += ["materialize", "--start", args.start, "--end", args.end]
    argv += ["--views", args.views] if args.views else []
    argv += ["--min-replicas", args.min_replicas]
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
