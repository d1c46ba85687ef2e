"""spark-submit job: stream rows into a feature view's Delta source and its newest values into Redis.

    spark-submit jobs/ingest_stream.py --repo feature_repo --view driver_hourly_stats \
        --from /bronze/driver_events --checkpoint /checkpoints/driver_hourly_stats --every "1 minute"
    spark-submit jobs/ingest_stream.py ... --format parquet --from /landing/driver_events --available-now

The same code path as ``fsspark ingest-stream``: appends are exactly once (Delta transaction ids),
pushes newer-wins. Runs until stopped (or, with --available-now, until what is there is taken):
SIGINT or SIGTERM to the Python driver stops it after the current batch (exit 0), a second one at
once (exit 130). Exits 2 on bad input or an unreachable store, 3 when a batch's push failed (restart
the job: it resumes from the checkpoint and pushes that batch again).
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--view", required=True, help="the feature view")
    parser.add_argument("--from", dest="source", required=True, help="a Delta table (path or name) or a folder of files")
    parser.add_argument("--format", default="delta", choices=("delta", "parquet", "json"))
    parser.add_argument("--checkpoint", required=True, help="the query's checkpoint folder")
    parser.add_argument("--every", default=None, help="micro-batch interval, e.g. '1 minute'")
    parser.add_argument("--available-now", action="store_true", help="take what is there now, then stop")
    parser.add_argument("--offline-only", action="store_true", help="append to Delta only")
    parser.add_argument("--profile", default="local",
                        help="Spark profile: local, cluster, connect, or one in $FSSPARK_CONF_DIR (spark-submit's --master wins)")
    parser.add_argument("--min-replicas", default="0", help="count keys written once this many replicas acknowledged them")
    parser.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    args = parser.parse_args()

    from featurestore_spark import cli

    argv = ["--repo", args.repo, "--profile", args.profile] + (["--debug"] if args.debug else [])
    argv += ["ingest-stream", "--min-replicas", args.min_replicas, "--view", args.view,
             "--from", args.source, "--format", args.format, "--checkpoint", args.checkpoint]
    argv += ["--every", args.every] if args.every else []
    argv += ["--available-now"] if args.available_now else []
    argv += ["--offline-only"] if args.offline_only else []
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
