"""Registration, login, token refresh and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import Caller, ClientAddress, RedisDep, SettingsDep, WriteSession, forget_sessions
from api.errors import AUTH_ERRORS, BODY_ERRORS, error_response, responses
from api.schemas.users import RefreshRequest, Token, UserRead, UserRegister
from core.errors import InactiveUser, NotAuthenticated
from core.users import service, sessions, throttle

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=responses(*BODY_ERRORS, 409, 429),
)
async def register(
    body: UserRegister,
    session: WriteSession,
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
    session: WriteSession,
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
    request: Request, body: RefreshRequest, session: WriteSession, settings: SettingsDep
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
async def logout(request: Request, caller: Caller, session: WriteSession) -> Response:
    """Revoke the presented access token and every token of its login (its
    refresh tokens too). Other logins of the user stay."""
    await sessions.revoke(session, caller.session_id, "logout")
    forget_sessions(request, session, session_ids=[caller.session_id])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
