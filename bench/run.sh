#!/usr/bin/env bash
# `make bench`: the benchmarks against a throwaway copy of the stack.
#
#   bench/run.sh            build; API part (up_seconds, wrk, ceiling, RSS,
#                           image size); jobs part; one table of every figure
#   bench/run.sh api [...]  only the API part (arguments go to python -m bench.api,
#                           e.g. `bench/run.sh api -d 5s`)
#   bench/run.sh jobs [...] only the jobs part (arguments go to python -m bench.jobs),
#                           then the memory figures (bench/memory.py)
#   bench/run.sh lists [...] only the items list at the quota (arguments go to
#                           python -m bench.lists); `all` runs it after the jobs
#
# wrk's settings also come from BENCH_DURATION (30s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2) and BENCH_WARMUP (5s).
#
# The stack runs as its own compose project (appstack-bench) with the settings
# of .env.example (and a fresh random SECRET_KEY, in bench/.env.bench) on
# 127.0.0.1:${BENCH_API_PORT:-18100}, the ceiling
# (bench/ceiling.py, bench/compose.ceiling.yml) on ${BENCH_CEILING_PORT:-18101};
# it is torn down afterwards. Results are merged into
# bench/results/latest.json and printed by bench/report.py.
set -euo pipefail
cd "$(dirname "$0")/.."

part=all
case "${1:-}" in
  api | jobs | lists) part=$1; shift ;;
  all) shift ;;
  "") ;;
  *) echo "usage: bench/run.sh [all | api [args] | jobs [args] | lists [args]]" >&2; exit 2 ;;
esac
if [ "$part" = all ] && [ $# -gt 0 ]; then
  echo "bench/run.sh: arguments go with one part (api, jobs or lists); for all use BENCH_* variables" >&2
  exit 2
fi

# Outside make (which does both), the local base images' names.
if [ -z "${PYTHON_IMAGE:-}" ] && [ -f ../shared/docker/images.env ]; then
  set -a; . ../shared/docker/images.env; set +a
fi

# .env.example with a fresh random SECRET_KEY (its placeholder is refused
# outside ENVIRONMENT=test).
secret_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
rm -f bench/.env.bench
# The jobs benchmark submits 16 uploads at once to measure throughput, past
# the default UPLOADS_PER_PROCESS (4): raised here, as the test stack does.
# wrk sends about 1,100 requests/s from one user and one address, far past
# the default rate limits (600/minute per user, 1200/minute per address):
# raised out of reach, not turned off, so that the figures include the
# limiter's Redis round trip, as production pays it. The memory benchmark
# imports a 20 MiB file (about 400,000 rows) past MAX_ITEMS_PER_USER, and
# the benchmarks register more users from one address than
# REGISTER_MAX_PER_IP allows in an hour: both raised.
# The throughput and fairness figures queue up to 1,000 jobs of one user,
# past MAX_ACTIVE_JOBS_PER_USER: raised.
(umask 077; sed -e "s|^SECRET_KEY=.*|SECRET_KEY=${secret_key}|" \
    -e "s|^UPLOADS_PER_PROCESS=.*|UPLOADS_PER_PROCESS=32|" \
    -e "s|^RATE_LIMIT_PER_USER=.*|RATE_LIMIT_PER_USER=1000000/minute|" \
    -e "s|^RATE_LIMIT_PER_ADDRESS=.*|RATE_LIMIT_PER_ADDRESS=1000000/minute|" \
    -e "s|^MAX_ITEMS_PER_USER=.*|MAX_ITEMS_PER_USER=10000000|" \
    -e "s|^REGISTER_MAX_PER_IP=.*|REGISTER_MAX_PER_IP=1000|" \
    -e "s|^MAX_ACTIVE_JOBS_PER_USER=.*|MAX_ACTIVE_JOBS_PER_USER=100000|" \
    .env.example > bench/.env.bench)

export COMPOSE_PROJECT_NAME="${BENCH_PROJECT:-appstack-bench}"
export APP_ENV_FILE=bench/.env.bench
export COMPOSE_ENV_FILES=.env.example
export APP_IMAGE="${BENCH_APP_IMAGE:-appstack:bench}"
export API_PORT="${BENCH_API_PORT:-18100}"
export API_URL="http://127.0.0.1:${API_PORT}"
export CEILING_PORT="${BENCH_CEILING_PORT:-18101}"
COMPOSE=(docker compose -f docker-compose.yml -f bench/compose.ceiling.yml)

if [ "$part" != jobs ] && [ "$part" != lists ] && ! command -v wrk >/dev/null; then
  echo "bench: wrk is missing; installing it with apt-get"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null; then
    $sudo apt-get install -y -qq wrk >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq wrk >/dev/null 2>&1; } \
      || true
  fi
  if ! command -v wrk >/dev/null; then
    echo "bench: the API benchmark needs wrk (https://github.com/wg/wrk) and it could not be" >&2
    echo "       installed; install it (apt-get install wrk, brew install wrk), or run" >&2
    echo "       only the jobs part: bench/run.sh jobs" >&2
    exit 1
  fi
fi

teardown() { "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap teardown EXIT
teardown

started=$SECONDS
docker compose build --quiet
if [ "$part" = all ] || [ "$part" = api ]; then
  echo "API benchmark"
  # Takes the stack down and up again itself: that is up_seconds.
  uv run --frozen python -m bench.api "$@"
fi
if [ "$part" = all ] || [ "$part" = jobs ]; then
  [ "$part" = jobs ] && docker compose up -d --wait
  echo "jobs benchmark"
  uv run --frozen python -m bench.jobs "$@"
  echo "memory benchmark"
  uv run --frozen python -m bench.memory
fi
if [ "$part" = all ] || [ "$part" = lists ]; then
  [ "$part" = lists ] && docker compose up -d --wait
  echo "items list benchmark"
  uv run --frozen python -m bench.lists "$@"
fi
uv run --frozen python -m bench.report
echo "bench/run.sh $part: $((SECONDS - started)) s"
