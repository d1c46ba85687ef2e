#!/usr/bin/env bash
# Sets up (idempotent) and runs the test suite against real Spark, Delta and Redis.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
# The tests start their own Redis servers on ports from $FSSPARK_TEST_PORT_BASE (default 7100) and never
# touch one they did not start (the example repo runs as a copy pointed at them).
# Static checks first (seconds): lint of everything, types of the public API (pyproject.toml says which).
.venv/bin/ruff check featurestore_spark jobs tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
