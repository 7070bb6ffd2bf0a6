"""Registration, login, token refresh and logout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from api.deps import Caller, ClientAddress, RedisDep, SessionDep, SettingsDep, forget_sessions
from api.errors import AUTH_ERRORS, BODY_ERRORS, error_response, responses
from api.validation import StorableStr
from core.errors import InactiveUser, NotAuthenticated
from core.users import service, sessions, throttle
from core.users.passwords import password_problem

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


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=responses(*BODY_ERRORS, 409, 429),
)
async def register(
    body: UserRegister,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    ip: ClientAddress,
) -> UserRead:
    """Create an account. The email is trimmed and lower-cased; it must be
    unused. The password may not be a common one nor contain the email's name.
    At most REGISTER_MAX_PER_IP registrations per client address per
    REGISTER_WINDOW_SECONDS (429 beyond)."""
    await throttle.count_registration(redis, settings.auth, ip=ip)
    user = await service.register(
        session, email=body.email, password=body.password, full_name=body.full_name
    )
    return UserRead.model_validate(user)


def _utf8(value: str) -> bool:
    # A multipart form may declare its own charset (utf-7, ...), which can
    # decode to lone surrogates that no UTF-8 encoder (Argon2's, hashlib's)
    # accepts.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_field(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("body", field),
                "msg": f"must be {message}",
                "input": None,
            }
        ]
    )


@router.post("/login", response_model=Token, responses=responses(*BODY_ERRORS, 401, 403, 429))
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    ip: ClientAddress,
) -> Token:
    """OAuth2 password flow: ``username`` is the email. Returns an access token
    (ACCESS_TOKEN_EXPIRE_MINUTES) and a refresh token. Too many failures from
    one address, or for one email from one address, answer 429 with
    Retry-After; failures for the email from elsewhere only slow it down."""
    if len(form.username) > 320 or "\x00" in form.username or not _utf8(form.username):
        raise _bad_field("username", "an email address: at most 320 characters, no NUL, UTF-8")
    if len(form.password) > 128 or not _utf8(form.password):
        # Never hashed: the API's passwords are 8-128 characters of UTF-8.
        raise _bad_field("password", "at most 128 characters of UTF-8")
    email = service.normalize_email(form.username)
    async with throttle.password_check(redis, settings.auth, email=email, ip=ip):
        user = await service.authenticate(session, email=email, password=form.password)
    if not user.is_active:
        raise InactiveUser
    login = await sessions.start(session, user, settings)
    if login.evicted:
        forget_sessions(request, session, session_ids=login.evicted)
    return Token.of(login.tokens)


@router.post("/refresh", response_model=Token, responses=responses(*BODY_ERRORS, 401))
async def refresh(
    request: Request, body: RefreshRequest, session: SessionDep, settings: SettingsDep
) -> Response:
    """Exchange a refresh token for a new pair; the old one stops working.
    Presenting a refresh token that was already exchanged revokes every
    token of that login (it was stolen, or the client is confused) and
    answers 401."""
    outcome = await sessions.refresh(session, body.refresh_token, settings)
    if isinstance(outcome, sessions.Refused):
        if outcome.revoked is not None:
            forget_sessions(request, session, session_ids=[outcome.revoked])
        # Returned, not raised: the request's transaction must commit the
        # revocation of a reused token's session before the 401 goes out.
        return error_response(
            401, NotAuthenticated.code, outcome.message, {"WWW-Authenticate": "Bearer"}
        )
    return JSONResponse(Token.of(outcome).model_dump())


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(*AUTH_ERRORS))
async def logout(request: Request, caller: Caller, session: SessionDep) -> Response:
    """Revoke the presented access token and every token of its login (its
    refresh tokens too). Other logins of the user stay."""
    await sessions.revoke(session, caller.session_id, "logout")
    forget_sessions(request, session, session_ids=[caller.session_id])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
