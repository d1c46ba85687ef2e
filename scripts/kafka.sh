#!/usr/bin/env bash
# A Kafka broker on this machine: Apache Kafka in KRaft mode (one node that is broker and controller,
# no ZooKeeper, no Docker), from the jars scripts/setup.sh fetched with Maven into .cache/kafka/libs,
# bound to 127.0.0.1. Storage is formatted on the first start; topics are created on first use.
# Config, data, log and pid live in .cache/kafka/.
#
# Usage: scripts/kafka.sh start|stop|status
#   FSSPARK_KAFKA_PORT        the clients' port (default 9092); the controller listens on port + 10000
#   FSSPARK_KAFKA_PARTITIONS  partitions of a topic created on first use (default 2)
# Idempotent: start leaves a running broker alone; stop ends only the process it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.cache/kafka"
PORT=${FSSPARK_KAFKA_PORT:-9092}
CONTROLLER=$((PORT + 10000))

source scripts/pids.sh
running() { running_pid "$DIR/broker.pid"; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then
      if [ "$(cat "$DIR/broker.port" 2>/dev/null)" != "$PORT" ]; then
        echo "[kafka] ERROR: the broker of this checkout runs on 127.0.0.1:$(cat "$DIR/broker.port" 2>/dev/null), not $PORT; stop it first" >&2
        exit 1
      fi
      echo "[kafka] already running (pid $(cat "$DIR/broker.pid")), 127.0.0.1:$PORT"; exit 0
    fi
    if [ ! -d "$DIR/libs" ]; then echo "[kafka] ERROR: no broker jars in $DIR/libs; run scripts/setup.sh" >&2; exit 1; fi
    if answers; then echo "[kafka] ERROR: something else listens on 127.0.0.1:$PORT; set FSSPARK_KAFKA_PORT" >&2; exit 1; fi
    mkdir -p "$DIR/data"
    cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
num.partitions=${FSSPARK_KAFKA_PARTITIONS:-2}
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    CP="$DIR/libs/*"
    JAVA_OPTS=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="file:$PWD/scripts/kafka-log4j2.properties"
               -Dkafka.logs.dir="$DIR")
    if [ ! -f "$DIR/data/meta.properties" ]; then  # first start: format the storage with a new cluster id
      id=$(java -cp "$CP" "${JAVA_OPTS[@]}" kafka.tools.StorageTool random-uuid)
      java -cp "$CP" "${JAVA_OPTS[@]}" kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 \
        || { echo "[kafka] ERROR: formatting the storage failed:" >&2; cat "$DIR/format.log" >&2; exit 1; }
    fi
    nohup java -cp "$CP" "${JAVA_OPTS[@]}" kafka.Kafka "$DIR/server.properties" >"$DIR/broker.log" 2>&1 &
    echo $! >"$DIR/broker.pid"
    echo "$PORT" >"$DIR/broker.port"
    wait_up kafka "$DIR/broker.pid" "$DIR/broker.log" "Kafka Server started" answers
    echo "[kafka] up: 127.0.0.1:$PORT (pid $(cat "$DIR/broker.pid"))"
    ;;
  stop) stop_service kafka "$DIR/broker.pid" ;;
  status) status_service "kafka broker" "$DIR/broker.pid" "127.0.0.1:$(cat "$DIR/broker.port" 2>/dev/null || echo "$PORT")" ;;
  *)
    echo "usage: scripts/kafka.sh start|stop|status" >&2; exit 2 ;;
esac
