"""spark-submit job: write the example repo's Delta tables (and entity rows) at any size.

    spark-submit jobs/generate_demo_data.py --rows 1000000 --out feature_repo/data
"""

import argparse
import sys

from featurestore_spark import cli_errors
from featurestore_spark.cli import count_at_least


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="feature_repo/data", help="folder for the Delta tables")
    parser.add_argument("--rows", type=count_at_least(1), default=100_000, help="rows per feature table")
    parser.add_argument("--entity-rows", type=count_at_least(1), default=None, help="entity rows (default: --rows)")
    parser.add_argument("--entities", type=count_at_least(1), default=10_000, help="distinct drivers and customers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default="local", help="Spark profile: local, cluster, connect, or one in $FSSPARK_CONF_DIR")
    parser.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    args = parser.parse_args()
    return cli_errors.run(lambda: generate(args), debug=args.debug, prog="generate_demo_data")


def generate(args: argparse.Namespace) -> None:
    from featurestore_spark.demo_data import write_demo_data
    from featurestore_spark.session import build_session

    spark = build_session(args.profile, app_name="generate_demo_data")
    paths = write_demo_data(
        spark, args.out, rows=args.rows, entity_rows_count=args.entity_rows, n_entities=args.entities, seed=args.seed
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    sys.exit(main())
