"""The FastAPI application factory.

Per-process resources (database engine, Redis client, job sender) are
created in the lifespan, after gunicorn forked the worker, never at import time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api import auth, errors, health, items, jobs, metrics, users
from api.middleware import BodySizeLimit, SecurityHeaders
from api.principals import PrincipalCache, TokenCache
from api.proxy import ForwardedClient
from api.ratelimit import RateLimit, RateLimiter
from api.redis_pipeline import PipelinedConnection
from api.request_context import RequestContext
from api.schemas.jobs import job_path
from api.upload_gate import UploadGate, UploadSlots
from core import tracing
from core.db import create_engine, create_read_sessionmaker, create_sessionmaker
from core.logging import configure_logging
from core.migrations import head_revisions, known_revisions
from core.observability import init_sentry
from core.queue import SEND_TIMEOUT_SECONDS, JobSender
from core.settings import Settings, load_settings_or_exit

log = logging.getLogger(__name__)

IMPORT_PATH = "/api/v1/items/import"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open this process's connections; close them on shutdown."""
    settings: Settings = app.state.settings
    engine = create_engine(settings.db, application_name="api")
    tracing.trace_engine(engine)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.read_sessionmaker = create_read_sessionmaker(engine)
    app.state.principals = PrincipalCache(settings.auth.auth_cache_seconds)
    app.state.tokens = TokenCache()
    app.state.redis = Redis.from_url(
        settings.redis.redis_url,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
        # A restarted Redis leaves dead sockets in the pool; retry on a fresh
        # connection (pipelines included, which only retry on these errors)
        # instead of failing the request.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    # Job messages go out on one connection that the process's submits share
    # (api/redis_pipeline.py): a redis-py call cost more CPU than the rest
    # of the send.
    app.state.sender_connection = PipelinedConnection(
        settings.redis.redis_url, timeout=SEND_TIMEOUT_SECONDS
    )
    app.state.producer = JobSender(app.state.sender_connection)
    app.state.head_revisions = head_revisions()
    app.state.known_revisions = known_revisions()
    # What start-up built (modules, the app, its routes and schemas: about
    # 120,000 objects) is never garbage: kept out of later collections, a
    # full one scans only what requests left, a shorter pause in the tail.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if limiter := getattr(app.state, "rate_limiter", None):
            await limiter.aclose()
        await app.state.sender_connection.aclose()
        await app.state.redis.aclose()
        await engine.dispose()


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware stack, innermost first."""
    # Added innermost first: the size limit runs before any body is read, and
    # every response (errors and CORS preflights too) gets the security headers.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.http.max_request_bytes,
        # The multipart envelope (boundary, part headers) around the file.
        per_path={IMPORT_PATH: settings.jobs.max_upload_bytes + 64 * 1024},
    )
    # Around the size limit: an upload's token and a free upload slot are
    # checked before any of its body is read.
    app.state.upload_slots = UploadSlots(settings.jobs.uploads_per_process)
    app.state.download_slots = UploadSlots(settings.jobs.downloads_per_process)
    app.add_middleware(
        UploadGate,
        path=IMPORT_PATH,
        slots=app.state.upload_slots,
        idle_seconds=settings.jobs.upload_idle_seconds,
    )
    # Around the upload gate, inside CORS: a refused request is not read, and
    # its 429 carries the CORS headers a browser needs to read it.
    if settings.ratelimit.rate_limit_enabled:
        app.state.rate_limiter = RateLimiter(settings)
        app.add_middleware(RateLimit, limiter=app.state.rate_limiter)
    origins = settings.http.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            # Credentials are never combined with a wildcard origin.
            allow_credentials="*" not in origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["RateLimit", "RateLimit-Policy", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        SecurityHeaders,
        hsts=settings.app.environment == "production",
        docs_prefixes=("/docs", "/openapi.json"),
    )
    # Outermost: the request id, the access log and the metrics cover
    # everything above, rejections included.
    app.add_middleware(RequestContext)
    # Around all of it: the client's address behind our proxies, before the
    # access log and the throttles read it.
    app.add_middleware(ForwardedClient, trusted=settings.web.forwarded_allow_ips)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application."""
    settings = settings or load_settings_or_exit()
    configure_logging(settings.app.log_level, settings.app.effective_log_format, batch=True)
    init_sentry(settings.app, component="api")
    app = FastAPI(
        title="appstack API",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    errors.install(app)
    for router in (
        health.router,
        metrics.router,
        auth.router,
        users.router,
        items.router,
        jobs.router,
    ):
        app.include_router(router)
    app.state.job_path = job_path(app)

    _add_middleware(app, settings)
    # With tracing on (set up after gunicorn's fork, api/gunicorn.conf.py):
    # a server span around every middleware above.
    tracing.instrument_app(app)
    return app


app = create_app()
