"""spark-submit job: build a training set from a request (YAML or JSON), or rebuild one from its manifest.

    spark-submit jobs/generate_training_set.py --request requests/ride_ranking.yaml [--profile cluster]
    spark-submit jobs/generate_training_set.py --reproduce /data/training_sets/ride_ranking --out /data/rebuilt

Progress goes to stderr; the last line on stdout is the summary (rows, seconds, output, Delta version).
"""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request", help="YAML or JSON training-set request")
    parser.add_argument("--reproduce", help="training-set table or manifest .json to rebuild")
    parser.add_argument("--out", help="with --reproduce: where the rebuilt training set goes")
    parser.add_argument("--version", type=int, help="with --reproduce on a table: the build that wrote this version")
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--catalog", help="catalog Delta table (default: $FSSPARK_CATALOG or <repo>/data/...)")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    args = parser.parse_args()
    if (args.request is None) == (args.reproduce is None) or (args.reproduce and not args.out):
        parser.error("give --request FILE, or --reproduce SOURCE --out PATH")

    from featurestore_spark import FeatureStore
    from featurestore_spark.progress import SparkProgress

    store = FeatureStore(repo_path=args.repo, profile=args.profile, catalog=args.catalog)
    with SparkProgress(store.spark) as progress:
        if args.reproduce:
            result = store.reproduce_training_set(args.reproduce, args.out, args.version, progress.step)
        else:
            result = store.create_training_set(args.request, progress.step)
    print(result.summary())


if __name__ == "__main__":
    main()
