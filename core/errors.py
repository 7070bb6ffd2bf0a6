"""Domain errors. Each carries its HTTP status and a stable machine-readable code;
the API renders them all with one handler."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the domain raises on purpose."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AppError):
    """The resource does not exist, or the caller may not see it."""

    status_code = 404
    code = "not_found"
