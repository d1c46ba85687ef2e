"""spark-submit job: build a training set from a request (YAML or JSON), or rebuild one from its manifest.

    spark-submit jobs/generate_training_set.py --request requests/ride_ranking.yaml [--profile cluster]
    spark-submit jobs/generate_training_set.py --reproduce /data/training_sets/ride_ranking --out /data/rebuilt

The same code path as ``fsspark training-set``: progress lines, then the summary (rows, seconds,
output, Delta version) as the last line. Exit codes as ``fsspark``'s: 2 on a bad request, with the
reason; 5 when another build created the output first.
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request", help="YAML or JSON training-set request")
    parser.add_argument("--reproduce", help="training-set table or manifest .json to rebuild")
    parser.add_argument("--out", help="with --reproduce: where the rebuilt training set goes")
    parser.add_argument("--version", help="with --reproduce on a table: the build that wrote this version")
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--catalog", help="catalog Delta table (default: $FSSPARK_CATALOG or <repo>/data/...)")
    parser.add_argument("--profile", default="local",
                        help="Spark profile: local, cluster, connect, or one in $FSSPARK_CONF_DIR (spark-submit's --master wins)")
    parser.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    args = parser.parse_args()

    from featurestore_spark import cli

    argv = ["--repo", args.repo, "--profile", args.profile] + (["--catalog", args.catalog] if args.catalog else [])
    argv += ["--debug"] if args.debug else []
    argv.append("training-set")
    if args.request:
        argv.append(args.request)
    for flag in ("reproduce", "out", "version"):
        if getattr(args, flag):
            argv += [f"--{flag}", getattr(args, flag)]
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
