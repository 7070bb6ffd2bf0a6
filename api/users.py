"""The current user's profile, and the user list for superusers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import Password, UserRead
from api.deps import CurrentUser, SessionDep, Superuser
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.validation import Limit, Offset, Page, StorableStr
from core.users import service

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


@router.patch("/me", response_model=UserRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS))
async def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserRead:
    """Change ``full_name`` (null clears it) or, with ``current_password``, the password.
    A wrong current password answers 401."""
    changes = body.model_dump(exclude_unset=True)
    updated = await service.update_profile(session, user, changes=changes)
    return UserRead.model_validate(updated)


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
