"""Domain errors. Each carries its HTTP status and a stable machine-readable code;
the API renders them all with one handler."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the domain raises on purpose."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class NotAuthenticated(AppError):
    """No credentials, or credentials that do not prove who the caller is."""

    status_code = 401
    code = "not_authenticated"

    def __init__(self, message: str = "missing or invalid access token") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(AppError):
    """Wrong email or password (the two are never told apart)."""

    status_code = 401
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("incorrect email or password", headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    """The caller is known but may not do this."""

    status_code = 403
    code = "forbidden"


class InactiveUser(Forbidden):
    """The account is deactivated."""

    code = "inactive_user"

    def __init__(self) -> None:
        super().__init__("this account is inactive")


class NotFound(AppError):
    """The resource does not exist, or the caller may not see it."""

    status_code = 404
    code = "not_found"


class Conflict(AppError):
    """The request clashes with what is stored (a duplicate key)."""

    status_code = 409
    code = "conflict"


class TooManyRequests(AppError):
    """Throttled; ``Retry-After`` says when to come back."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    """A backing service failed, or the process is saturated: retry later."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class PayloadTooLarge(AppError):
    """An upload larger than the configured limit."""

    status_code = 413
    code = "request_too_large"


class UnsupportedMediaType(AppError):
    """An upload whose declared type is not one the route reads."""

    status_code = 415
    code = "unsupported_media_type"


class Gone(AppError):
    """The resource existed and was deleted on purpose (an expired job result)."""

    status_code = 410
    code = "gone"


class QuotaExceeded(AppError):
    """A per-user quota is used up. 429 with ``Retry-After`` when the quota frees
    itself over time (active jobs finish, stored files expire); 403 when only the
    user can free it (deleting items)."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(
            message, headers={"Retry-After": str(retry_after)} if retry_after is not None else None
        )
        self.status_code = 429 if retry_after is not None else 403
        self.retry_after = retry_after
