#!/usr/bin/env bash
# Sets up (idempotent) and runs the test suite against real Spark, Delta and Redis.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
source scripts/redis.sh
redis_start
trap redis_stop EXIT
.venv/bin/python -m pytest "$@"
