#!/usr/bin/env bash
# `make test-prod`: the production stack (docker-compose.prod.yml) on this
# machine, under its own compose project, with DOMAIN=localhost (Caddy's local
# CA), generated secrets, and Caddy on 127.0.0.1:18080 / 18443. The tests in
# tests/prod then check TLS, the containers' hardening, the placeholder guard,
# backup / wipe / restore, and a rolling update of the api under load.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Outside make (which does both), Docker and the local base images' names.
if [ -z "${PYTHON_IMAGE:-}" ] && [ -x ../shared/docker/setup ]; then
    ../shared/docker/setup >/dev/null
    set -a; . ../shared/docker/images.env; set +a
fi

export COMPOSE_PROJECT_NAME="${PROD_TEST_PROJECT:-appstack-prodtest}"
export COMPOSE_FILE=docker-compose.prod.yml
export ENV_FILE=tests/.env.prod.test      # for deploy/vm/*.sh
export COMPOSE_ENV_FILES="$ENV_FILE"      # for plain `docker compose`
export PROD_URL="https://localhost:18443"
export PROD_HTTP_URL="http://localhost:18080"

step() { printf '\n==> %s\n' "$*"; }
down() { docker compose --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true; }
teardown() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        step "failed (exit $status); last service logs"
        docker compose logs --no-color --tail=100 2>&1 | grep -v 'GET /health' || true
    fi
    down
}
trap teardown EXIT
down  # a stack left by an interrupted run, with the old secrets

# Three replicas of the api and of the worker (tests/prod/test_replicas.py),
# each api replica with 2 x 1 + 1 gunicorn workers: 9 api processes on a
# 2-core machine.
deploy/prod-env.sh "$ENV_FILE" HTTP_PORT=18080 HTTPS_PORT=18443 \
    APP_IMAGE="${PROD_TEST_APP_IMAGE:-appstack:prodtest}" \
    API_REPLICAS=3 WORKER_REPLICAS=3 API_CPUS=1 PROMETHEUS_PORT=18991 >/dev/null

# Caddy before 2.11.2 turns a POST retried after a failed dial into a 502
# (caddyserver/caddy#7546), which replicas being stopped or killed provoke.
# The official caddy:2 image is newer; an older one (a distribution's
# package) gets Caddy 2.11.7's binary over it (tests/prod/caddy.Dockerfile).
caddy_image=${CADDY_IMAGE:-caddy:2}
caddy_version=$(docker run --rm "$caddy_image" caddy version | sed 's/^v//; s/ .*//')
if [ "$(printf '%s\n' 2.11.2 "$caddy_version" | sort -V | head -n 1)" != 2.11.2 ]; then
    step "Caddy $caddy_version is older than 2.11.2: building the checks' Caddy 2.11.7"
    docker build --quiet -f tests/prod/caddy.Dockerfile \
        --build-arg PYTHON_IMAGE="${PYTHON_IMAGE:-python:3.13-slim}" \
        --build-arg CADDY_IMAGE="$caddy_image" -t appstack-caddy:prodtest tests/prod >/dev/null
    export CADDY_IMAGE=appstack-caddy:prodtest
fi

started=$SECONDS
step "build"
docker compose build --quiet
step "production stack up (DOMAIN=localhost)"
docker compose up -d --wait
step "production checks"
uv run --frozen pytest -p no:cacheprovider -s tests/prod "$@"
step "production checks passed in $((SECONDS - started))s"
