# Source this file: redis_start / redis_stop run a throw-away Redis on loopback.
# Port: FSSPARK_REDIS_PORT (default 6379). Data lives in .cache/redis and is not persisted.
REDIS_PORT=${FSSPARK_REDIS_PORT:-6379}
redis_start() {
  mkdir -p .cache/redis
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "[redis] already answering on 127.0.0.1:$REDIS_PORT"; REDIS_STARTED=0; return
  fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --dir "$PWD/.cache/redis" --pidfile "$PWD/.cache/redis/redis-$REDIS_PORT.pid" \
    --logfile "$PWD/.cache/redis/redis-$REDIS_PORT.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_STARTED=1
  echo "[redis] started on 127.0.0.1:$REDIS_PORT"
}
redis_stop() {
  if [ "${REDIS_STARTED:-0}" = "1" ]; then redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
}
