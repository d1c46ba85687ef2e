"""spark-submit job: the end-to-end demo on the example repo.

1. writes sample Delta tables (``--rows`` per feature view) and entity rows,
2. builds a point-in-time-correct training set from them with the ride_ranking service,
3. writes it to Delta (one atomic commit) and prints the plan, a few rows and a summary.

    spark-submit jobs/demo.py --rows 100000 --out feature_repo/data
"""

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="feature_repo/data", help="folder for the Delta tables")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per feature table and entity rows")
    parser.add_argument("--entities", type=int, default=10_000, help="distinct drivers and customers")
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--profile", default="local", help="Spark profile in conf/")
    args = parser.parse_args()

    out = os.path.abspath(args.out)
    os.environ["FSSPARK_DATA_DIR"] = out  # the example repo's sources live under this folder

    from featurestore_spark import FeatureStore, build_session
    from featurestore_spark.demo_data import write_demo_data

    spark = build_session(args.profile, app_name="featurestore_spark-demo")
    started = time.perf_counter()
    paths = write_demo_data(spark, out, rows=args.rows, n_entities=args.entities)
    print(f"[1/3] sample Delta tables under {out} ({time.perf_counter() - started:.1f} s)")

    store = FeatureStore(repo_path=args.repo, spark=spark)
    started = time.perf_counter()
    training = store.get_historical_features(entity_df=paths["entities"], features="ride_ranking")
    target = f"{out}/training_sets/ride_ranking"
    training.write.format("delta").mode("overwrite").save(target)
    seconds = time.perf_counter() - started
    print(f"[2/3] training set written to {target} ({seconds:.1f} s)")

    result = spark.read.format("delta").load(target)
    result.orderBy("event_timestamp", "driver_id").show(5, truncate=False)
    rows = result.count()
    print(f"[3/3] summary: {rows} rows, {len(result.columns)} columns, {seconds:.1f} s, output {target}")


if __name__ == "__main__":
    main()
