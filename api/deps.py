"""Dependencies, named as nouns in one place.

Sessions: a route names the one it takes. ``ReadSession`` (autocommit, no
transaction) for routes that only read; ``WriteSession`` (one transaction:
committed when the route returns, rolled back when it raises, after-commit
callbacks run after the commit) for routes that write.

Callers: ``Caller`` (the resource routes: items, jobs) is a principal from
this process's cache, looked up in a short session of its own, never the
route's. ``CurrentUser`` and ``Superuser`` (the users routes) load the account
afresh, always in the request's ``WriteSession``: FastAPI resolves a
dependency once per request, so a route that takes both gets the account in
the very session that flushes its changes. There is no read-session variant
on purpose: an account loaded in another session and changed would be
silently lost (or fail on flush), and the routes that load it are few and
cold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from api.principals import Principal, PrincipalCache, TokenCache
from core.db import after_commit, transaction
from core.errors import Forbidden, NotAuthenticated
from core.models import User
from core.queue import JobSender
from core.security import TokenClaims, verify_access_token
from core.settings import Settings
from core.users import sessions

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a route that only reads: its queries run in autocommit,
    two round trips fewer (BEGIN, COMMIT) on the hottest routes."""
    async with request.app.state.read_sessionmaker() as session:
        yield session


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a route that writes: one transaction, committed on
    success, rolled back on error, then the after-commit callbacks (the
    broker messages)."""
    async with request.app.state.sessionmaker() as session, transaction(session):
        yield session


def read_bind(request: Request) -> AsyncEngine | AsyncConnection:
    """What the read sessions are bound to (the autocommit engine; in tests,
    the test's connection), for a route that reads in Core without a
    Session: one dependency layer, a session and its transaction less."""
    bind: AsyncEngine | AsyncConnection = request.app.state.read_sessionmaker.kw["bind"]
    return bind


# Both with ``scope="function"``: closed (and a write committed, its messages
# sent) before the response leaves, so a client that gets a 2xx can read what
# it wrote.
ReadSession = Annotated[AsyncSession, Depends(read_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(write_session, scope="function")]


# These are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop per request.


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_producer(request: Request) -> JobSender:
    """What the API sends job messages with."""
    producer: JobSender = request.app.state.producer
    return producer


async def get_redis(request: Request) -> Redis:
    """This process's Redis client."""
    redis: Redis = request.app.state.redis
    return redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
ProducerDep = Annotated[JobSender, Depends(get_producer)]
RedisDep = Annotated[Redis, Depends(get_redis)]
# The access token of the Authorization header, unchecked; None without one.
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


def token_claims(request: Request, token: str | None) -> TokenClaims:
    """The claims of a valid bearer token; :class:`NotAuthenticated` without
    one. A token's signature is checked once per process (TokenCache); whether
    its session is still live is the callers' question."""
    if not token:
        raise NotAuthenticated
    secret = request.app.state.settings.app.secret_key
    tokens: TokenCache = request.app.state.tokens
    claims = tokens.claims(token, lambda t: verify_access_token(t, secret=secret))
    if claims is None:
        raise NotAuthenticated
    return claims


async def get_current_user(request: Request, session: WriteSession, token: BearerToken) -> User:
    """The active user the bearer token names, checked afresh and loaded in
    the request's write session: 401 without a valid token or when its
    session was revoked, 403 for a deactivated account."""
    return await sessions.authorize(session, token_claims(request, token))


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_superuser(user: CurrentUser) -> User:
    """The current user, who must be a superuser."""
    if not user.is_superuser:
        raise Forbidden("this requires a superuser")
    return user


Superuser = Annotated[User, Depends(get_superuser)]


async def get_caller(request: Request, token: BearerToken) -> Principal:
    """The caller of a resource route: like :func:`get_current_user`, but a
    live session found recently is taken from this process's cache
    (api/principals.py) instead of the database."""
    claims = token_claims(request, token)
    cache: PrincipalCache = request.app.state.principals
    principal = cache.get(claims.session_id)
    if principal is None:
        generation = cache.generation
        async with request.app.state.read_sessionmaker() as session:
            user = await sessions.authorize(session, claims)
        principal = Principal(user.id, user.is_superuser, claims.session_id)
        cache.put(principal, seen=generation)
    return principal


Caller = Annotated[Principal, Depends(get_caller)]


async def get_client_address(request: Request) -> str:
    """The client's address (api/proxy.py made it the forwarded one when a
    trusted proxy connected)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(get_client_address)]


def forget_sessions(
    request: Request,
    session: AsyncSession,
    *,
    session_ids: Sequence[UUID] = (),
    user_id: UUID | None = None,
) -> None:
    """Make this process refuse auth sessions the request revokes in
    ``session`` (its write session) at once (other processes follow within
    AUTH_CACHE_SECONDS): dropped from the cache now, and again after the
    commit; a lookup that started before the commit cannot put them back
    (api/principals.py)."""
    cache: PrincipalCache = request.app.state.principals
    cache.forget(session_ids=session_ids, user_id=user_id)

    async def again() -> None:
        cache.forget(session_ids=session_ids, user_id=user_id)

    after_commit(session, again)
