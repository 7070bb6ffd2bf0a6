"""The current user's profile; the user list and account activation for superusers."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import Password, UserRead
from api.deps import (
    ClientAddress,
    CurrentUser,
    RedisDep,
    SessionDep,
    SettingsDep,
    Superuser,
    forget_sessions,
)
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.validation import Limit, Offset, Page, StorableStr
from core.users import service, throttle
from core.users.passwords import password_problem

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserUpdate(BaseModel):
    """A partial update of one's own profile. Changing the password needs the
    current one."""

    model_config = ConfigDict(extra="forbid")

    full_name: Annotated[StorableStr, Field(min_length=1, max_length=200)] | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _password_needs_current(self) -> UserUpdate:
        if self.password is not None and self.current_password is None:
            raise ValueError("current_password is required to change the password")
        return self


class UserPage(Page[UserRead]):
    """A page of users."""


@router.get("/me", response_model=UserRead, responses=responses(*AUTH_ERRORS))
async def read_me(user: CurrentUser) -> UserRead:
    """The authenticated user."""
    return UserRead.model_validate(user)


@router.patch("/me", response_model=UserRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 429))
async def update_me(
    request: Request,
    body: UserUpdate,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    ip: ClientAddress,
) -> UserRead:
    """Change ``full_name`` (null clears it) or, with ``current_password``, the
    password. A wrong current password answers 401 and counts against the
    login throttle (429 past it). A new password ends every login of the
    user, this one included: log in again with it."""
    if body.password is not None:
        problem = password_problem(body.password, user.email)
        if problem is not None:
            raise RequestValidationError(
                [{"type": "weak_password", "loc": ("body", "password"), "msg": problem}]
            )
        async with throttle.password_check(redis, settings.auth, email=user.email, ip=ip):
            await service.change_password(
                session, user, current=body.current_password or "", new=body.password
            )
        forget_sessions(request, session, user_id=user.id)
    changes = body.model_dump(exclude_unset=True, include={"full_name"})
    updated = await service.update_profile(session, user, changes=changes)
    return UserRead.model_validate(updated)


class UserAdminUpdate(BaseModel):
    """What a superuser may change on any account."""

    model_config = ConfigDict(extra="forbid")

    is_active: bool


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 404),
)
async def update_user(
    request: Request, user_id: UUID, body: UserAdminUpdate, _: Superuser, session: SessionDep
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
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UserPage:
    """Every user, oldest first (superusers only)."""
    rows, total = await service.page(session, limit=limit, offset=offset)
    return UserPage(
        items=[UserRead.model_validate(u) for u in rows], total=total, limit=limit, offset=offset
    )
