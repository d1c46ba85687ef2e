"""spark-submit job: the end-to-end demo on the example repo.

1. writes sample Delta tables (``--rows`` per feature view) and entity rows,
2. builds a point-in-time-correct training set from them with the ride_ranking service, from a
   training-set request: one atomic Delta commit, with a manifest that can rebuild it,
3. pushes the latest value of every feature per entity to Redis (feature_store.yaml's online_store),
4. reads a few drivers back through Feast's own online serving.

    spark-submit jobs/demo.py --rows 100000 --out feature_repo/data
"""

import argparse
import os
import sys
import time
from datetime import timedelta


def main() -> int:
    from featurestore_spark import cli_errors
    from featurestore_spark.cli import count_at_least

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="feature_repo/data", help="folder for the Delta tables")
    parser.add_argument("--rows", type=count_at_least(1), default=100_000, help="rows per feature table and entity rows")
    parser.add_argument("--entities", type=count_at_least(1), default=10_000, help="distinct drivers and customers")
    parser.add_argument("--repo", default="feature_repo", help="the Feast repo")
    parser.add_argument("--profile", default="local", help="Spark profile: local, cluster, connect, or one in $FSSPARK_CONF_DIR")
    parser.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    args = parser.parse_args()
    return cli_errors.run(lambda: demo(args), debug=args.debug, prog="demo")


def demo(args: argparse.Namespace) -> None:
    out = os.path.abspath(args.out)
    os.environ["FSSPARK_DATA_DIR"] = out  # the example repo's sources live under this folder

    from featurestore_spark import FeatureStore, build_session
    from featurestore_spark.demo_data import DEFAULT_START, write_demo_data

    spark = build_session(args.profile, app_name="featurestore_spark-demo")
    started = time.perf_counter()
    paths = write_demo_data(spark, out, rows=args.rows, n_entities=args.entities)
    print(f"[1/4] sample Delta tables under {out} ({time.perf_counter() - started:.1f} s)")

    store = FeatureStore(repo_path=args.repo, spark=spark, catalog=f"{out}/training_set_catalog")
    built = store.create_training_set({
        "name": "ride_ranking",
        "entities": {"delta": paths["entities"]},
        "features": "ride_ranking",
        "output": {"path": f"{out}/training_sets/ride_ranking", "mode": "overwrite"},
    })
    result = spark.read.format("delta").load(built.output)
    result.orderBy("event_timestamp", "driver_id").show(5, truncate=False)
    print(f"[2/4] training set: {built.rows_out} rows, {len(result.columns)} columns, {built.seconds:.1f} s, "
          f"output {built.output} (Delta version {built.version}, manifest {built.manifest_path})")

    started = time.perf_counter()
    reports = store.materialize(DEFAULT_START - timedelta(days=1), DEFAULT_START + timedelta(days=31))
    seconds = time.perf_counter() - started
    pushed = ", ".join(f"{r.view} {r.written} written / {r.skipped} skipped" for r in reports)
    print(f"[3/4] pushed to Redis in {seconds:.1f} s: {pushed}")

    online = read_back(args.repo, [1001, 1002, 1003])
    print(f"[4/4] read back through Feast: {online}")


def read_back(repo: str, drivers: list[int]) -> dict:
    """Feast's own online serving, on a registry made here from the same definitions."""
    import tempfile
    from pathlib import Path

    import feast
    import yaml

    from featurestore_spark.repo import _import_definitions

    config = yaml.safe_load(os.path.expandvars(Path(repo, "feature_store.yaml").read_text()))
    config["registry"] = str(Path(tempfile.mkdtemp(prefix="fsspark-registry-")) / "registry.db")
    config.pop("offline_store", None)
    fs = feast.FeatureStore(config=feast.RepoConfig(repo_path=Path(repo), **config))
    fs.apply(_import_definitions(Path(repo)))
    return fs.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        entity_rows=[{"driver_id": d} for d in drivers],
    ).to_dict()


if __name__ == "__main__":
    sys.exit(main())
