#!/usr/bin/env bash
# `make bench`: the benchmarks against a throwaway copy of the stack.
#
# The stack runs as its own compose project (appstack-bench) with the settings
# of .env.example on 127.0.0.1:${BENCH_API_PORT:-18100}; it is torn down
# afterwards. Results are printed and written to bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME="${BENCH_PROJECT:-appstack-bench}"
export APP_ENV_FILE=.env.example
export COMPOSE_ENV_FILES=.env.example
export APP_IMAGE="${BENCH_APP_IMAGE:-appstack:bench}"
export API_PORT="${BENCH_API_PORT:-18100}"
export API_URL="http://127.0.0.1:${API_PORT}"

teardown() { docker compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap teardown EXIT
teardown

docker compose build --quiet
docker compose up -d --wait
uv run --frozen python -m bench.jobs "$@"
