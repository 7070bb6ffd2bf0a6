"""Registration and login."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.deps import RedisDep, SessionDep, SettingsDep
from api.errors import BODY_ERRORS, responses
from api.validation import StorableStr
from core.errors import InactiveUser, InvalidCredentials
from core.security import create_access_token
from core.users import service, throttle

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Password = Annotated[str, Field(min_length=8, max_length=128)]


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


class UserRegister(BaseModel):
    """Input of registration."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: Password
    full_name: Annotated[StorableStr, Field(min_length=1, max_length=200)] | None = None


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (not a secret)
    expires_in: int = Field(description="Seconds until the token expires")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=responses(*BODY_ERRORS, 409),
)
async def register(body: UserRegister, session: SessionDep) -> UserRead:
    """Create an account. The email is trimmed and lower-cased; it must be unused."""
    user = await service.register(
        session, email=body.email, password=body.password, full_name=body.full_name
    )
    return UserRead.model_validate(user)


def client_ip(request: Request) -> str:
    """The caller's address (the proxy's X-Forwarded-For when it is trusted)."""
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=Token, responses=responses(*BODY_ERRORS, 401, 403, 429))
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Token:
    """OAuth2 password flow: ``username`` is the email. Too many failures for
    one email or from one address within the window answer 429."""
    if len(form.username) > 320 or "\x00" in form.username:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "username"),
                    "msg": "must be an email address: at most 320 characters, no NUL",
                    "input": None,
                }
            ]
        )
    email, ip = service.normalize_email(form.username), client_ip(request)
    await throttle.check(redis, settings.auth, email=email, ip=ip)
    try:
        user = await service.authenticate(session, email=email, password=form.password)
    except InvalidCredentials:
        await throttle.record_failure(redis, settings.auth, email=email, ip=ip)
        raise
    if not user.is_active:
        raise InactiveUser
    await throttle.reset(redis, email=email, ip=ip)
    expires = timedelta(minutes=settings.auth.access_token_expire_minutes)
    token = create_access_token(user.id, secret=settings.app.secret_key, expires_in=expires)
    return Token(access_token=token, expires_in=int(expires.total_seconds()))
