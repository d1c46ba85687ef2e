#!/usr/bin/env bash
# Sets up (idempotent) and runs the demo job under spark-submit:
# sample Delta data -> point-in-time training set (Delta) -> push to Redis -> read back through Feast.
# Usage: scripts/demo.sh [--rows N] [--entities N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
export PATH="$PWD/.venv/bin:$PATH" PYSPARK_PYTHON="$PWD/.venv/bin/python" PYSPARK_DRIVER_PYTHON="$PWD/.venv/bin/python"
source scripts/redis.sh
redis_start
JARS=$(ls .cache/jars/*.jar | paste -sd, -)
.venv/bin/spark-submit --master "local[*]" --jars "$JARS" --conf spark.ui.showConsoleProgress=false \
  --driver-java-options "-Duser.timezone=UTC -Dlog4j2.configurationFile=file:$PWD/scripts/log4j2-warn.properties" \
  jobs/demo.py "$@"
