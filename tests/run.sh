#!/usr/bin/env bash
# `make test`: the whole suite against a throwaway copy of the stack.
#
#   1. build the images; start db and redis; run the migrations;
#   2. unit + integration tests inside a container on the compose network,
#      against the dedicated <db>_test database; then the integration tests
#      once more through PgBouncer in transaction mode;
#   3. the whole stack up, with Prometheus (monitoring profile, its config
#      checked by promtool after the build); end-to-end tests from the host
#      against the published API and Prometheus;
#   4. fault tests: workers killed, Redis restarted, poison jobs; then the
#      api and worker exporting traces to the suite's OTLP receiver (tests/tracing);
#   5. tear everything down (volumes too) and exit with the tests' status.
#
# `tests/run.sh faults` (`make test-faults`) runs only steps 3 and 4's fault
# tests. The stack runs as its own compose project (appstack-test) with the
# settings of .env.example (with a fresh random SECRET_KEY) plus the short job
# timings of tests/jobs-fast.env,
# so neither a running development stack nor a local .env is touched. Extra
# arguments go to the in-container pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside make (which does both), Docker and the local base images' names.
if [ -z "${PYTHON_IMAGE:-}" ] && [ -x ../shared/docker/setup ]; then
    ../shared/docker/setup >/dev/null
    set -a; . ../shared/docker/images.env; set +a
fi

mode=all
if [ "${1:-}" = faults ]; then
    mode=faults
    shift
fi

# .env.example with a fresh random SECRET_KEY (its placeholder is refused
# outside ENVIRONMENT=test, which only the test container runs with).
secret_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
rm -f tests/.env.test
(umask 077; sed "s|^SECRET_KEY=.*|SECRET_KEY=${secret_key}|" .env.example | cat - tests/jobs-fast.env > tests/.env.test)
export COMPOSE_PROJECT_NAME="${TEST_PROJECT:-appstack-test}"
export APP_ENV_FILE=tests/.env.test
export COMPOSE_ENV_FILES=.env.example
export APP_IMAGE="${TEST_APP_IMAGE:-appstack:test}"
export TEST_IMAGE="${TEST_IMAGE:-appstack-test:test}"
export FLOWER_IMAGE="${TEST_FLOWER_IMAGE:-appstack-flower:test}"
export API_PORT="${TEST_API_PORT:-18000}"
export API_URL="http://127.0.0.1:${API_PORT}"
export FLOWER_PORT="${TEST_FLOWER_PORT:-18555}"
export PROMETHEUS_PORT="${TEST_PROMETHEUS_PORT:-18990}"
export PROMETHEUS_URL="http://127.0.0.1:${PROMETHEUS_PORT}"

step() { printf '\n==> %s\n' "$*"; }
down() { docker compose --profile test --profile pgbouncer --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true; }
teardown() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        # What the services said, so that a failure in CI can be diagnosed.
        step "failed (exit $status); last service logs"
        docker compose logs --no-color --tail=150 api worker scheduler 2>&1 |
            grep -v 'GET /health' || true
    fi
    down
}
trap teardown EXIT
down

started=$SECONDS
step "build"
docker compose --profile test --profile monitoring build --quiet

if [ "$mode" = all ]; then
    step "monitoring config (promtool: check config, check rules, test rules)"
    deploy/monitoring/check.sh
fi

if [ "$mode" = all ]; then
    step "db and redis"
    docker compose up -d --wait db redis

    step "unit and integration tests (in a container on the compose network)"
    docker compose --profile test run --rm test \
        pytest -p no:cacheprovider tests/unit tests/integration "$@"

    step "integration tests again, through PgBouncer in transaction mode (DB_POOLER=transaction)"
    TEST_DB_HOST=pgbouncer TEST_DB_POOLER=transaction \
        docker compose --profile test --profile pgbouncer run --rm test \
        pytest -p no:cacheprovider tests/integration "$@"
fi

step "whole stack, and the monitoring profile's Prometheus"
docker compose up -d --wait
docker compose --profile monitoring up -d --wait prometheus

if [ "$mode" = all ]; then
    step "end-to-end tests (from the host, against ${API_URL})"
    uv run --frozen pytest -p no:cacheprovider tests/e2e
    docker compose up -d --wait  # the outage test stopped db; be sure all is back
fi

step "fault tests (SIGKILLed worker, restarted Redis, stopped worker, poison job)"
uv run --frozen pytest -p no:cacheprovider -s tests/faults

if [ "$mode" = all ]; then
    # The api and the worker again, exporting OTLP traces to the suite's own
    # receiver (tests/tracing/compose.yml); one trace from request to job.
    step "tracing (api and worker export to an OTLP receiver of the suite)"
    export OTLP_TEST_PORT="${TEST_OTLP_PORT:-18431}"
    export COMPOSE_FILE=docker-compose.yml:tests/tracing/compose.yml
    docker compose up -d --wait otlp api worker
    uv run --frozen pytest -p no:cacheprovider tests/tracing
fi

step "all tests passed in $((SECONDS - started))s"
