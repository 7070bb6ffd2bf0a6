# The single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# On machines without a registry, ../shared/docker/setup starts Docker and
# builds local stand-ins for the base images named in images.env. Elsewhere the
# machine's Docker and the official images are used.
DOCKER_SETUP := $(wildcard ../shared/docker/setup)
IMAGES_ENV := $(wildcard ../shared/docker/images.env)
ifneq ($(IMAGES_ENV),)
include $(IMAGES_ENV)
export PYTHON_IMAGE POSTGRES_IMAGE REDIS_IMAGE CADDY_IMAGE PGBOUNCER_IMAGE PROMETHEUS_IMAGE
endif

COMPOSE := docker compose
API_PORT ?= $(shell sed -n 's/^API_PORT=//p' .env 2>/dev/null || true)
API_PORT := $(or $(API_PORT),8000)
UV := $(shell command -v uv 2>/dev/null)

.PHONY: help docker env uv up watch down logs ps migrate seed revision shell psql lint fmt test test-faults test-prod prod-up prod-down bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

docker:
	@if [ -n "$(DOCKER_SETUP)" ]; then "$(DOCKER_SETUP)"; fi

# A missing .env becomes .env.example with a fresh random SECRET_KEY (the
# example's placeholder is refused outside ENVIRONMENT=test), readable by you
# only. An existing .env is left alone.
env:
	@[ -f .env ] || { \
		key=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))' || openssl rand -base64 48 | tr -d '\n/+=') \
		&& [ -n "$$key" ] \
		&& (umask 077; sed "s|^SECRET_KEY=.*|SECRET_KEY=$$key|" .env.example > .env.new) \
		&& mv .env.new .env \
		&& echo "created .env from .env.example with a fresh random SECRET_KEY"; }

uv:
	@command -v uv >/dev/null || python3 -m pip install --quiet "uv==0.13.9"

up: docker env ## build and start the stack, wait until every service is healthy
	$(COMPOSE) up --build --wait
	@echo
	@echo "  API        http://127.0.0.1:$(API_PORT)"
	@echo "  API docs   http://127.0.0.1:$(API_PORT)/docs"
	@echo "  readiness  http://127.0.0.1:$(API_PORT)/health/ready"

watch: docker env ## run the stack in the foreground; code edits restart api and worker
	$(COMPOSE) up --build --watch

down: docker ## stop the stack (data volumes are kept)
	$(COMPOSE) down --remove-orphans

logs: docker ## follow the logs of every service
	$(COMPOSE) logs -f --tail=100

ps: docker ## show the services and their health
	$(COMPOSE) ps -a

# `run --build`: the image of the code as it is now (a new model, a new
# migration), not the one built at the last `make up`.
migrate: docker env ## apply the migrations (alembic upgrade head under an advisory lock)
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --build --rm migrate

seed: docker env ## create the superuser from FIRST_SUPERUSER_EMAIL / _PASSWORD (idempotent)
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --build --rm migrate python -m core.users.seed

revision: docker env uv ## autogenerate a migration: make revision m="add items"
	@[ -n "$(m)" ] || { echo 'usage: make revision m="what changed"'; exit 2; }
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --build --rm migrate
	$(COMPOSE) run --rm --no-deps --user "$$(id -u):$$(id -g)" -v "$(CURDIR)/migrate:/app/migrate" \
		migrate alembic revision --autogenerate -m "$(m)"
	uv run --frozen ruff format migrate/versions

shell: docker ## a Python shell in the api container
	$(COMPOSE) exec api python

psql: docker ## psql on the development database
	$(COMPOSE) exec db sh -c 'psql -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'

lint: uv ## ruff, mypy, import-linter, the size limits (tools/check_shape.py) and the CI files
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy
	uv run --frozen lint-imports
	uv run --frozen python tools/check_shape.py
	uv run --frozen check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	uv run --frozen check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	uv run --frozen python tools/check_workflows.py

fmt: uv ## format and autofix
	uv run --frozen ruff format .
	uv run --frozen ruff check --fix .

test: docker uv ## the whole suite: unit, integration (direct and via PgBouncer), e2e, faults, production
	./tests/run.sh
	./tests/prod/run.sh

test-faults: docker uv ## only the fault tests (killed worker, Redis restart, poison job)
	./tests/run.sh faults

test-prod: docker uv ## only the production checks (TLS, hardening, backup/restore, rolling update)
	./tests/prod/run.sh

# The production stack on this machine: https://localhost:8443 (Caddy's local
# CA). Secrets are generated into .env.prod.local on first use and kept.
PROD_ENV ?= .env.prod.local
# Its own project name: on a machine that also runs the real production stack
# (project appstack-prod, deploy/vm), prod-up, prod-down and clean leave it alone.
PROD := $(COMPOSE) -p appstack-local -f docker-compose.prod.yml --env-file $(PROD_ENV)

prod-up: docker ## the production stack locally (DOMAIN=localhost, generated secrets)
	@if [ -f $(PROD_ENV) ]; then ./deploy/prod-env.sh --add-missing $(PROD_ENV); \
	else ./deploy/prod-env.sh $(PROD_ENV); fi
	$(PROD) up --build -d --wait
	@echo
	@echo "  API   https://localhost:$$(sed -n 's/^HTTPS_PORT=//p' $(PROD_ENV))  (Caddy's local CA:"
	@echo "        $(PROD) cp caddy:/data/caddy/pki/authorities/local/root.crt .)"

prod-down: docker ## stop the local production stack (volumes kept; add -v by hand to wipe)
	@[ -f $(PROD_ENV) ] || { echo "no $(PROD_ENV): nothing to stop"; exit 0; }
	$(PROD) down --remove-orphans

clean: docker ## stop everything and delete the data volumes
	$(COMPOSE) down -v --remove-orphans
	$(COMPOSE) -p appstack-test --profile test --profile pgbouncer down -v --remove-orphans
	@[ ! -f $(PROD_ENV) ] || $(PROD) down -v --remove-orphans
	APP_ENV_FILE=.env.prod.example $(COMPOSE) -p appstack-prodtest -f docker-compose.prod.yml --env-file .env.prod.example down -v --remove-orphans

bench: docker uv ## benchmarks on a throwaway stack; writes bench/results/latest.json
	./bench/run.sh
