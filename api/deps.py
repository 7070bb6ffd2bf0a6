"""Dependencies, named as nouns in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from api.principals import Principal, PrincipalCache, TokenCache
from core.db import transaction
from core.errors import Forbidden, NotAuthenticated
from core.models import User
from core.security import verify_access_token
from core.settings import Settings
from core.users import service as users

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


# Methods that never write (HTTP's "safe" methods; every route keeps to it).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit on success, roll back on error.

    Declared with ``scope="function"`` so the commit (and the broker messages
    sent after it) happen before the response leaves: a client that gets a 2xx
    can read what it wrote. A GET only reads, so it runs its queries in
    autocommit: two round trips fewer (BEGIN, COMMIT) on the hottest routes.
    """
    if request.method in READ_ONLY_METHODS:
        async with request.app.state.read_sessionmaker() as session:
            yield session
        return
    async with request.app.state.sessionmaker() as session, transaction(session):
        yield session


# These are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop per request.


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_producer(request: Request) -> Celery:
    """The Celery app the API sends messages with."""
    producer: Celery = request.app.state.producer
    return producer


async def get_redis(request: Request) -> Redis:
    """This process's Redis client."""
    redis: Redis = request.app.state.redis
    return redis


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProducerDep = Annotated[Celery, Depends(get_producer)]
RedisDep = Annotated[Redis, Depends(get_redis)]


def token_subject(request: Request, token: str | None) -> UUID:
    """The user id a bearer token names; :class:`NotAuthenticated` without a
    valid one. A token's signature is checked once per process (TokenCache)."""
    if not token:
        raise NotAuthenticated
    secret = request.app.state.settings.app.secret_key
    tokens: TokenCache = request.app.state.tokens
    user_id = tokens.subject(token, lambda t: verify_access_token(t, secret=secret))
    if user_id is None:
        raise NotAuthenticated
    return user_id


async def get_current_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    """The active user the bearer token names: 401 without a valid token, 403
    for a deactivated account."""
    return await users.get_active(session, token_subject(request, token))


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The caller of a resource route: like :func:`get_current_user`, but an
    active account found recently is taken from this process's cache
    (api/principals.py) instead of the database."""
    user_id = token_subject(request, token)
    cache: PrincipalCache = request.app.state.principals
    principal = cache.get(user_id)
    if principal is None:
        async with request.app.state.read_sessionmaker() as session:
            user = await users.get_active(session, user_id)
        principal = Principal(user.id, user.is_superuser)
        cache.put(principal)
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


async def get_superuser(user: CurrentUser) -> User:
    """The current user, who must be a superuser."""
    if not user.is_superuser:
        raise Forbidden("this requires a superuser")
    return user


Superuser = Annotated[User, Depends(get_superuser)]
