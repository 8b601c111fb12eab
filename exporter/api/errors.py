"""The one error hierarchy of API failures: each class's ``reason`` is the label of
``northflank_poll_errors_total``.

An :class:`AuthError` carries :data:`PERMISSION_HINT`, what an operator should check.
"""

from __future__ import annotations

from typing import ClassVar

# The billing read permission, as Northflank's docs have named it: late 2026, and before.
BILLING_READ = ("Organisation > Admin > Billing > Read", "Account > Billing > General > Read")
PERMISSION_HINT = (
    "check the API token (NORTHFLANK_API_TOKEN or NORTHFLANK_API_TOKEN_FILE) and that its "
    f"role grants billing read: '{BILLING_READ[0]}' in the current API "
    f"docs, '{BILLING_READ[1]}' in older ones"
)


class ApiError(Exception):
    """A request failed for good (after any retries)."""

    reason: ClassVar[str] = "http"

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status = status


class AuthError(ApiError):
    reason = "auth"


class NotFoundError(ApiError):
    reason = "not_found"


class RateLimitedError(ApiError):
    reason = "rate_limited"


class RequestCapError(RateLimitedError):
    """Not sent: the requests this run may send (``check``'s ten) are spent."""


class HttpStatusError(ApiError):
    reason = "http"


class ApiTimeoutError(ApiError):
    reason = "timeout"


class ApiConnectionError(ApiError):
    reason = "connection"


class InvalidResponseError(ApiError):
    reason = "invalid_response"


def error_for_status(endpoint: str, status: int, message: str) -> ApiError:
    kind: type[ApiError]
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 429:
        kind = RateLimitedError
    else:
        kind = HttpStatusError
    return kind(endpoint, f"HTTP {status}: {message}", status)


def first_api_error(exc: BaseException) -> ApiError | None:
    """The ApiError inside (possibly nested) exception groups of a TaskGroup."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_api_error(inner)
            if found is not None:
                return found
    return None


# Every reason a poll can fail for, in the order the README lists them: each is a series
# of northflank_poll_errors_total from the start, 0 until it happens.
REASONS = tuple(
    kind.reason
    for kind in (
        AuthError,
        NotFoundError,
        RateLimitedError,
        HttpStatusError,
        ApiTimeoutError,
        ApiConnectionError,
        InvalidResponseError,
    )
)
