"""spark-submit job: build a training set from a request (YAML or JSON), or rebuild one from its manifest.

    spark-submit jobs/generate_training_set.py --request requests/ride_ranking.yaml [--profile cluster]
    spark-submit jobs/generate_training_set.py --reproduce /data/training_sets/ride_ranking --out /data/rebuilt

``fsspark training-set`` with the same options: progress lines, then the summary (rows, seconds,
output, Delta version) as the last line. Exit codes as ``fsspark``'s: 2 on a bad request, with the
reason; 5 when another build created the output first.
"""

import sys

from featurestore_spark import cli

if __name__ == "__main__":
    sys.exit(cli.main(["training-set", *sys.argv[1:]], prog="generate_training_set.py"))
