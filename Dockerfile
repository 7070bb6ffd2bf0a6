# One image for the api, worker, scheduler and migrate services.
#   test:       adds the dev dependencies and the tests
#   monitoring: adds Flower (the `monitoring` compose profile)
#   runtime:    the locked runtime dependencies and the code (the last stage,
#               so the default when no target is given)
ARG PYTHON_IMAGE=python:3.13-slim

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip pip install "uv==${UV_VERSION}"
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-dev --no-install-project

FROM builder AS builder-test
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-install-project

FROM builder AS builder-monitoring
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-dev --group monitoring --no-install-project

# The runtime's dependencies without what only a build or a debugger reads:
# debug symbols of the compiled extensions (uvloop, asyncpg, ... shrink to a
# fraction) and the Cython / C sources shipped beside them.
FROM builder AS builder-slim
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update && apt-get install -y --no-install-recommends binutils
RUN find /opt/venv -name '*.so' -exec strip --strip-unneeded {} + \
    && find /opt/venv \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.h' \) -delete

FROM ${PYTHON_IMAGE} AS base
# MALLOC_ARENA_MAX: glibc gives every thread that allocates (the thread pools
# of anyio and asyncpg) an arena of its own; two keep each process smaller.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2 \
    ALEMBIC_CONFIG=/app/migrate/alembic.ini
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

FROM base AS test
COPY --from=builder-test /opt/venv /opt/venv
COPY pyproject.toml ./
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrate ./migrate
COPY tests ./tests
COPY Dockerfile docker-compose.yml docker-compose.prod.yml ./
COPY deploy/render.yaml ./deploy/
COPY deploy/helm ./deploy/helm
COPY deploy/monitoring ./deploy/monitoring
COPY docs/monitoring.md docs/configuration.md ./docs/
COPY .github ./.github
COPY .pre-commit-config.yaml Makefile README.md ./
COPY tools/check_workflows.py ./tools/
USER app
CMD ["pytest", "-p", "no:cacheprovider", "tests/unit", "tests/integration"]

# Last, so that a build without a target (Render's) produces the runtime image.
FROM base AS monitoring
COPY --from=builder-monitoring /opt/venv /opt/venv
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrate ./migrate
USER app
CMD ["celery", "-A", "worker.app", "flower"]

FROM base AS runtime
COPY --from=builder-slim /opt/venv /opt/venv
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrate ./migrate
# Bytecode built now: the root filesystem is read-only in production.
RUN python -m compileall -q core api worker migrate
USER app
EXPOSE 8000
CMD ["gunicorn", "-c", "api/gunicorn.conf.py"]
