"""The current user's profile; the user list and account activation for superusers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

from api.deps import (
    ClientAddress,
    CurrentUser,
    RedisDep,
    SettingsDep,
    Superuser,
    WriteSession,
    forget_sessions,
)
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.schemas.common import Limit, Offset
from api.schemas.users import UserAdminUpdate, UserPage, UserRead, UserUpdate
from core.users import service, throttle
from core.users.passwords import password_problem

router = APIRouter(prefix="/api/v1/users", tags=["users"])

# The routes below load the account (CurrentUser, Superuser) in the request's
# WriteSession, the reads too: see api/deps.py.


@router.get("/me", response_model=UserRead, responses=responses(*AUTH_ERRORS))
async def read_me(me: CurrentUser) -> UserRead:
    """The authenticated user."""
    return UserRead.model_validate(me)


@router.patch("/me", response_model=UserRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 429))
async def update_me(
    request: Request,
    body: UserUpdate,
    me: CurrentUser,
    session: WriteSession,
    redis: RedisDep,
    settings: SettingsDep,
    ip: ClientAddress,
) -> UserRead:
    """Change ``full_name`` (null clears it) or, with ``current_password``, the
    password. A wrong current password answers 401 and counts against the
    login throttle (429 past it). A new password ends every login of the
    user, this one included: log in again with it."""
    if body.password is not None:
        problem = password_problem(body.password, me.email)
        if problem is not None:
            raise RequestValidationError(
                [{"type": "weak_password", "loc": ("body", "password"), "msg": problem}]
            )
        async with throttle.password_check(redis, settings.auth, email=me.email, ip=ip):
            await service.change_password(
                session, me, current=body.current_password or "", new=body.password
            )
        forget_sessions(request, session, user_id=me.id)
    changes = body.model_dump(exclude_unset=True, include={"full_name"})
    updated = await service.update_profile(session, me, changes=changes)
    return UserRead.model_validate(updated)


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 404),
)
async def update_user(
    request: Request,
    user_id: UUID,
    body: UserAdminUpdate,
    _: Superuser,
    session: WriteSession,
) -> UserRead:
    """Activate or deactivate an account (superusers only). Deactivating ends
    every login of the user at once in this process, within
    AUTH_CACHE_SECONDS in the others."""
    user = await service.set_active(session, user_id, active=body.is_active)
    if not body.is_active:
        forget_sessions(request, session, user_id=user.id)
    return UserRead.model_validate(user)


@router.get("", response_model=UserPage, responses=responses(*AUTH_ERRORS))
async def list_users(
    _: Superuser,
    session: WriteSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UserPage:
    """Every user, oldest first (superusers only)."""
    rows, total = await service.page(session, limit=limit, offset=offset)
    return UserPage.of(rows, total, limit=limit, offset=offset)
