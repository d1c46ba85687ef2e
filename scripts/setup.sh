#!/usr/bin/env bash
# Sets up everything the project needs on a fresh Debian machine, idempotently:
#   1. checks Java (Spark 4 needs 17+),
#   2. checks Python (3.11+), then a virtualenv in .venv with the pinned packages (every one, as
#      requirements.lock.txt lists them) and this project (editable),
#   3. the Delta Lake jars from Maven Central, cached in .cache/jars (later runs work offline),
#   4. redis-server from Debian's packages (for the online store and its tests),
#   5. Spark's Kafka connector (into .cache/jars) and a Kafka broker's jars (into .cache/kafka/libs, for
#      scripts/kafka.sh), from Maven Central.
# Usage: scripts/setup.sh            (FSSPARK_SKIP_REDIS=1 skips step 4)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

JARS_DIR="$ROOT/.cache/jars"

log() { printf '[setup] %s\n' "$*"; }

# 1. Java
if ! command -v java >/dev/null 2>&1; then
  echo "[setup] ERROR: Java is not installed. Spark 4 needs Java 17 or newer:" >&2
  echo "        apt-get install -y openjdk-17-jre-headless   (then run this script again)" >&2
  exit 1
fi
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [ "${java_major:-0}" -lt 17 ]; then
  echo "[setup] ERROR: Java ${java_major} found; Spark 4 needs Java 17 or newer." >&2
  exit 1
fi
log "java ${java_major} ok"

# 2. Python packages
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "[setup] ERROR: Python 3.11 or newer is needed; '$PY' is $("$PY" --version 2>&1 || echo 'not found')." >&2
  echo "        Install it, or point PYTHON at one: PYTHON=/usr/bin/python3.11 scripts/setup.sh" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  log "installing Debian's python3-venv (needed to create .venv)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.fsspark-installed
want=$(cat requirements.lock.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing pinned packages (first run takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.lock.txt
  .venv/bin/pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
log "python packages ok"

# 3. Delta jars (Maven Central once, then the local cache), of the versions the package pins
read -r DELTA_VERSION SPARK_MINOR < <(.venv/bin/python -c 'from featurestore_spark.session import DELTA_VERSION, SPARK_MINOR; print(DELTA_VERSION, SPARK_MINOR)')
delta_jar="$JARS_DIR/delta-spark_${SPARK_MINOR}_2.13-${DELTA_VERSION}.jar"
storage_jar="$JARS_DIR/delta-storage-${DELTA_VERSION}.jar"
need_maven() {  # jars come through Maven only (checksums, no hard-coded host)
  if ! command -v mvn >/dev/null 2>&1; then
    log "installing Maven from Debian's packages"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq maven >/dev/null
  fi
}
if [ ! -f "$delta_jar" ] || [ ! -f "$storage_jar" ]; then
  mkdir -p "$JARS_DIR"
  need_maven
  log "fetching Delta ${DELTA_VERSION} jars with Maven"
  for art in "io.delta:delta-spark_${SPARK_MINOR}_2.13:${DELTA_VERSION}" "io.delta:delta-storage:${DELTA_VERSION}"; do
    mvn -q -B dependency:copy -Dartifact="$art" -DoutputDirectory="$JARS_DIR" >/dev/null
  done
fi
log "delta jars ok ($JARS_DIR)"

# 4. Redis server
if [ "${FSSPARK_SKIP_REDIS:-0}" != "1" ] && ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server from Debian's packages"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
command -v redis-server >/dev/null 2>&1 && log "redis-server ok ($(redis-server --version | cut -d' ' -f3))"

# 5. Kafka: Spark's connector and Avro reader for the pinned Spark (Spark's own jars already hold their
# Scala, Hadoop client, Avro, compression and logging dependencies), and a broker for scripts/kafka.sh.
SPARK_VERSION=$(.venv/bin/python -c 'import pyspark; print(pyspark.__version__)')
KAFKA_CLIENTS=3.9.2   # the kafka-clients spark-sql-kafka-0-10 ${SPARK_VERSION} depends on
if [ ! -f "$JARS_DIR/spark-sql-kafka-0-10_2.13-${SPARK_VERSION}.jar" ] || [ ! -f "$JARS_DIR/spark-avro_2.13-${SPARK_VERSION}.jar" ]; then
  need_maven
  log "fetching Spark's Kafka connector ${SPARK_VERSION} with Maven"
  for art in "org.apache.spark:spark-sql-kafka-0-10_2.13:${SPARK_VERSION}" \
             "org.apache.spark:spark-token-provider-kafka-0-10_2.13:${SPARK_VERSION}" \
             "org.apache.kafka:kafka-clients:${KAFKA_CLIENTS}" "org.apache.commons:commons-pool2:2.13.1" \
             "org.apache.spark:spark-avro_2.13:${SPARK_VERSION}"; do
    mvn -q -B dependency:copy -Dartifact="$art" -DoutputDirectory="$JARS_DIR" >/dev/null
  done
fi
log "kafka connector ok"
if [ ! -f .cache/kafka/libs/.complete ]; then
  need_maven
  log "fetching the Kafka broker with Maven (scripts/maven/kafka-broker.xml)"
  rm -rf .cache/kafka/libs
  mvn -q -B -f scripts/maven/kafka-broker.xml dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$ROOT/.cache/kafka/libs" >/dev/null
  touch .cache/kafka/libs/.complete
fi
log "kafka broker ok (.cache/kafka/libs)"
log "done"
