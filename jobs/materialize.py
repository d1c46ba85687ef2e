"""spark-submit job: push the latest feature values of a window to Redis (Feast's layout).

    spark-submit jobs/materialize.py --repo feature_repo --start 2026-01-01T00:00:00 --end 2026-02-01T00:00:00
    spark-submit jobs/materialize.py --repo feature_repo --incremental --end 2026-02-01T00:00:00

``fsspark materialize`` (or, with --incremental, ``fsspark materialize-incremental``) with the same
options, checked before Spark starts (--start before --end). Exits 2 on bad input or an unreachable
store, 3 when some keys could not be written (rerun the same command), 5 when another writer committed
to a Delta table it writes first (rerun).
"""

import sys

from featurestore_spark import cli

if __name__ == "__main__":
    args = sys.argv[1:]
    command = "materialize-incremental" if "--incremental" in args else "materialize"
    sys.exit(cli.main([command, *[a for a in args if a != "--incremental"]], prog="materialize.py"))
