#!/usr/bin/env bash
# A Spark standalone cluster on this machine: one master and two workers, each its own JVM, started
# with the pinned pyspark's own bin/spark-class (the pip package has no sbin/start-*.sh), bound to
# 127.0.0.1. Logs, pids and the workers' folders live in .cache/cluster/.
#
# Usage: scripts/cluster.sh start|stop|status
#   FSSPARK_CLUSTER_PORT     master port (default 7077); the master URL is spark://127.0.0.1:<port>
#   FSSPARK_WORKER_CORES     cores per worker (default 1)
#   FSSPARK_WORKER_MEMORY    memory per worker (default 2g)
# Idempotent: start leaves running daemons alone; stop ends only the processes it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.cache/cluster"
PORT=${FSSPARK_CLUSTER_PORT:-7077}
MASTER="spark://127.0.0.1:$PORT"
SPARK_HOME=$(.venv/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$DIR"
# The workers launch executors whose Python workers must find the project's packages.
export PYSPARK_PYTHON="$PWD/.venv/bin/python"

source scripts/pids.sh
running() { running_pid "$DIR/$1.pid"; }

daemon() {  # name, class, args...
  local name=$1; shift
  if running "$name"; then echo "[cluster] $name already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  nohup "$SPARK_HOME/bin/spark-class" "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
  echo "[cluster] $name started (pid $!)"
}

wait_for() {  # log file, text: the daemon says it is up
  for _ in $(seq 120); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done
  echo "[cluster] ERROR: no '$2' in $1 after 60 s:" >&2; tail -20 "$1" >&2; return 1
}

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    daemon master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$PORT" --webui-port 0
    wait_for "$DIR/master.log" "I have been elected leader"
    for n in 1 2; do
      mkdir -p "$DIR/worker$n"
      daemon "worker$n" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --webui-port 0 \
        --cores "${FSSPARK_WORKER_CORES:-1}" --memory "${FSSPARK_WORKER_MEMORY:-2g}" --work-dir "$DIR/worker$n" "$MASTER"
    done
    for n in 1 2; do wait_for "$DIR/worker$n.log" "Successfully registered with master"; done
    echo "[cluster] up: $MASTER"
    ;;
  stop)
    for name in worker2 worker1 master; do
      if running "$name"; then stop_pid "$DIR/$name.pid"; echo "[cluster] $name stopped"; fi
      rm -f "$DIR/$name.pid"
    done
    ;;
  status)
    for name in master worker1 worker2; do
      if running "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
    echo "master URL: $MASTER"
    ;;
  *)
    echo "usage: scripts/cluster.sh start|stop|status" >&2; exit 2 ;;
esac
