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
down() { docker compose down -v --remove-orphans >/dev/null 2>&1 || true; }
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

deploy/prod-env.sh "$ENV_FILE" HTTP_PORT=18080 HTTPS_PORT=18443 \
    APP_IMAGE="${PROD_TEST_APP_IMAGE:-appstack:prodtest}" >/dev/null

started=$SECONDS
step "build"
docker compose build --quiet
step "production stack up (DOMAIN=localhost)"
docker compose up -d --wait
step "production checks"
uv run --frozen pytest -p no:cacheprovider -s tests/prod "$@"
step "production checks passed in $((SECONDS - started))s"
