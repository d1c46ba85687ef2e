#!/usr/bin/env bash
# A Spark Connect server on this machine, with Delta Lake, bound to 127.0.0.1: the server class ships
# in the pinned pyspark's jars; the Delta jars come from .cache/jars (scripts/setup.sh). Its Spark runs
# local[2] by default; its Python workers (mapInArrow, foreachBatch) use the project's virtualenv.
# Log and pid live in .cache/connect/.
#
# Usage: scripts/connect.sh start|stop|status
#   FSSPARK_CONNECT_PORT     gRPC port (default 15002); clients use sc://127.0.0.1:<port>
#   FSSPARK_CONNECT_MASTER   the server's Spark master (default local[2])
#   FSSPARK_CONNECT_MEMORY   the server's driver memory (default 4g)
# Idempotent: start leaves a running server alone; stop ends only the process it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.cache/connect"
PORT=${FSSPARK_CONNECT_PORT:-15002}

source scripts/pids.sh
running() { running_pid "$DIR/server.pid"; }

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    if running; then echo "[connect] already running (pid $(cat "$DIR/server.pid"))"; exit 0; fi
    SPARK_HOME=$(.venv/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
    export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$PWD/.venv/bin/python"
    JARS=$(ls "$PWD"/.cache/jars/delta-*.jar 2>/dev/null | paste -sd, -)
    if [ -z "$JARS" ]; then echo "[connect] ERROR: no Delta jars in .cache/jars; run scripts/setup.sh" >&2; exit 1; fi
    KAFKA=$(ls "$PWD"/.cache/jars/{spark-sql-kafka,spark-token-provider-kafka,kafka-clients,commons-pool2,spark-avro}*.jar 2>/dev/null | paste -sd, - || true)
    if [ -n "$KAFKA" ]; then JARS="$JARS,$KAFKA"; fi
    : >"$DIR/server.log"
    nohup "$SPARK_HOME/bin/spark-submit" --class org.apache.spark.sql.connect.service.SparkConnectServer \
      --master "${FSSPARK_CONNECT_MASTER:-local[2]}" --driver-memory "${FSSPARK_CONNECT_MEMORY:-4g}" \
      --jars "$JARS" \
      --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port="$PORT" \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      --conf spark.sql.session.timeZone=UTC \
      --conf spark.driver.extraJavaOptions=-Duser.timezone=UTC \
      --conf spark.sql.shuffle.partitions=8 --conf spark.ui.enabled=false \
      --conf spark.databricks.delta.snapshotPartitions=4 \
      --conf spark.sql.warehouse.dir="$DIR/warehouse" \
      spark-internal >"$DIR/server.log" 2>&1 &
    echo $! >"$DIR/server.pid"
    wait_up connect "$DIR/server.pid" "$DIR/server.log" "Spark Connect server started"
    echo "[connect] up: sc://127.0.0.1:$PORT (pid $(cat "$DIR/server.pid"))"
    ;;
  stop) stop_service connect "$DIR/server.pid" ;;
  status) status_service "connect server" "$DIR/server.pid" "sc://127.0.0.1:$PORT" ;;
  *)
    echo "usage: scripts/connect.sh start|stop|status" >&2; exit 2 ;;
esac
