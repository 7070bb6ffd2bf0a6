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
export PYTHON_IMAGE POSTGRES_IMAGE REDIS_IMAGE CADDY_IMAGE PGBOUNCER_IMAGE
endif

COMPOSE := docker compose
API_PORT ?= $(shell sed -n 's/^API_PORT=//p' .env 2>/dev/null || true)
API_PORT := $(or $(API_PORT),8000)
UV := $(shell command -v uv 2>/dev/null)

.PHONY: help docker env uv up watch down logs ps migrate seed revision shell psql lint fmt test test-faults bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

docker:
	@if [ -n "$(DOCKER_SETUP)" ]; then "$(DOCKER_SETUP)"; fi

env:
	@[ -f .env ] || { cp .env.example .env; echo "created .env from .env.example"; }

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

migrate: docker env ## apply the migrations (alembic upgrade head under an advisory lock)
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --rm migrate

seed: docker env ## create the superuser from FIRST_SUPERUSER_EMAIL / _PASSWORD (idempotent)
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --rm migrate python -m core.users.seed

revision: docker env uv ## autogenerate a migration: make revision m="add items"
	@[ -n "$(m)" ] || { echo 'usage: make revision m="what changed"'; exit 2; }
	$(COMPOSE) up -d --wait db
	$(COMPOSE) run --rm migrate
	$(COMPOSE) run --rm --no-deps --user "$$(id -u):$$(id -g)" -v "$(CURDIR)/migrate:/app/migrate" \
		migrate alembic revision --autogenerate -m "$(m)"
	uv run --frozen ruff format migrate/versions

shell: docker ## a Python shell in the api container
	$(COMPOSE) exec api python

psql: docker ## psql on the development database
	$(COMPOSE) exec db sh -c 'psql -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'

lint: uv ## ruff, mypy and import-linter
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy
	uv run --frozen lint-imports

fmt: uv ## format and autofix
	uv run --frozen ruff format .
	uv run --frozen ruff check --fix .

test: docker uv ## the whole suite inside compose (unit, integration, end-to-end, faults)
	./tests/run.sh

test-faults: docker uv ## only the fault tests (killed worker, Redis restart, poison job)
	./tests/run.sh faults

clean: docker ## stop everything and delete the data volumes
	$(COMPOSE) down -v --remove-orphans
	$(COMPOSE) -p appstack-test --profile test down -v --remove-orphans

bench: docker uv ## benchmarks on a throwaway stack; writes bench/results/latest.json
	./bench/run.sh
