"""Bodies of the auth and users routes: accounts, registration, tokens and
profile updates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import Page
from core.text import StorableStr
from core.users import sessions
from core.users.passwords import password_problem

Password = Annotated[str, Field(min_length=8, max_length=128)]
FullName = Annotated[StorableStr, Field(min_length=1, max_length=200)]


class UserRead(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime


class UserPage(Page[UserRead]):
    """A page of users."""


class UserRegister(BaseModel):
    """Input of registration."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: Password
    full_name: FullName | None = None

    @field_validator("password")
    @classmethod
    def _strong_enough(cls, password: str, info: ValidationInfo) -> str:
        # The email is validated first (declared first); when it is invalid
        # only the common-password rule applies, and the email's error shows.
        problem = password_problem(password, info.data.get("email"))
        if problem is not None:
            raise PydanticCustomError("weak_password", problem)
        return password


class Token(BaseModel):
    """An OAuth2 bearer token, and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (not a secret)
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(
        description="Opaque; exchange it once at /api/v1/auth/refresh for a new pair"
    )
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires")

    @classmethod
    def of(cls, pair: sessions.TokenPair) -> Token:
        """The response for a new token pair."""
        return cls(
            access_token=pair.access_token,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
            refresh_expires_in=pair.refresh_expires_in,
        )


class RefreshRequest(BaseModel):
    """A refresh token to exchange."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=256)


class UserUpdate(BaseModel):
    """A partial update of one's own profile. Changing the password needs the
    current one."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _password_needs_current(self) -> UserUpdate:
        if self.password is not None and self.current_password is None:
            raise ValueError("current_password is required to change the password")
        return self


class UserAdminUpdate(BaseModel):
    """What a superuser may change on any account."""

    model_config = ConfigDict(extra="forbid")

    is_active: bool
