"""spark-submit job: stream rows into a feature view's Delta source and its newest values into Redis.

    spark-submit jobs/ingest_stream.py --repo feature_repo --view driver_hourly_stats \
        --from /bronze/driver_events --checkpoint /checkpoints/driver_hourly_stats --every "1 minute"
    spark-submit jobs/ingest_stream.py ... --format parquet --from /landing/driver_events --available-now

``fsspark ingest-stream`` with the same options: appends are exactly once (Delta transaction ids),
pushes newer-wins. Runs until stopped (or, with --available-now, until what is there is taken):
SIGINT or SIGTERM to the Python driver stops it after the current batch (exit 0), a second one at
once (exit 130). Exits 2 on bad input or an unreachable store, 3 when a batch's push failed (restart
the job: it resumes from the checkpoint and pushes that batch again).
"""

import sys

from featurestore_spark import cli

if __name__ == "__main__":
    sys.exit(cli.main(["ingest-stream", *sys.argv[1:]], prog="ingest_stream.py"))
