"""The exception tree of altcraft_async (a leaf module: it imports nothing from the package).

Every error the SDK raises is an :class:`AltcraftError`, so one ``except`` catches them all::

    AltcraftError
     +-- TransportError              the request did not get a reply (DNS, connect, reset, ...)
     |    +-- RequestTimeoutError    ... because a per-request timeout expired (also TimeoutError)
     +-- HTTPStatusError             a non-2xx reply without a readable Altcraft envelope
     +-- APIError                    the envelope said ``error != 0`` (whatever the HTTP status)
     |    +-- BadRequestError        400
     |    +-- AuthenticationError    401 token required / invalid
     |    +-- TariffLimitError       402
     |    +-- PermissionDeniedError  403
     +-- DecodeError                 the reply could not be read as the documented shape
     +-- TaskFailedError             a task reached a failure status (failed, error, cancelled)
     +-- TaskTimeoutError            waiting for a task ran past its deadline (also TimeoutError)
     +-- InvalidRequestError         bad input, raised before anything is sent (also ValueError)
     +-- ClientClosedError           the client was used after ``aclose()`` or from another loop

Messages never carry the API token: errors are built from endpoint names, codes and short
excerpts of *response* bodies, never from request bodies or headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AltcraftError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "DecodeError",
    "HTTPStatusError",
    "InvalidRequestError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "TariffLimitError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "api_error_for",
]


class AltcraftError(Exception):
    """Base class of every error raised by altcraft_async."""


class TransportError(AltcraftError):
    """The request got no usable HTTP reply (connection refused, reset, DNS failure, ...).

    ``sent`` tells whether the request may have reached the server: a start call whose
    request was never sent can safely be retried. ``transient`` is False for failures that a
    retry cannot fix (a TLS certificate error).
    """

    def __init__(
        self, message: str, *, endpoint: str = "", sent: bool = True, transient: bool = True
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.sent = sent
        self.transient = transient


class RequestTimeoutError(TransportError, TimeoutError):
    """A single HTTP request ran past its timeout."""


class HTTPStatusError(AltcraftError):
    """A non-2xx HTTP reply whose body is not an Altcraft envelope.

    ``status`` and ``headers`` are kept so callers (and the retry policy) can inspect them.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int,
        headers: Mapping[str, str] | None = None,
        excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self.excerpt = excerpt


class APIError(AltcraftError):
    """The platform answered with ``error != 0``; ``code`` and ``error_text`` are kept as sent."""

    def __init__(
        self,
        code: int,
        error_text: str,
        *,
        endpoint: str = "",
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        where = f"{endpoint}: " if endpoint else ""
        super().__init__(f"{where}error {code}: {error_text}")
        self.code = code
        self.error_text = error_text
        self.endpoint = endpoint
        self.http_status = http_status
        self.headers: Mapping[str, str] = dict(headers or {})


class BadRequestError(APIError):
    """Error 400: the platform rejected the parameters."""


class AuthenticationError(APIError):
    """Error 401: the token is missing or invalid."""


class TariffLimitError(APIError):
    """Error 402: the account's tariff does not allow this call."""


class PermissionDeniedError(APIError):
    """Error 403: the token may not call this endpoint (e.g. admin API with a user token)."""


class DecodeError(AltcraftError):
    """The reply body is not the documented shape; ``excerpt`` holds its first bytes.

    ``transient`` is True when the body itself was damaged (not JSON or XML, cut short), which
    a retry may fix, and False when a well-formed reply does not fit the model or is over
    ``max_response_size``, which every retry would repeat.
    """

    def __init__(
        self, message: str, *, endpoint: str = "", excerpt: str = "", transient: bool = True
    ) -> None:
        where = f"{endpoint}: " if endpoint else ""
        tail = f" (body starts {excerpt!r})" if excerpt else ""
        super().__init__(f"{where}{message}{tail}")
        self.endpoint = endpoint
        self.excerpt = excerpt
        self.transient = transient


class TaskFailedError(AltcraftError):
    """A task reached a failure status; the last status payload is kept in ``raw``.

    ``result`` is what the platform sent as the failed task's ``result``, as plain data: None,
    a reason string or an object (its shape is undocumented, so it is kept as sent).
    """

    def __init__(
        self,
        task_id: str,
        status: str,
        progress: float | None = None,
        raw: Any = None,
        *,
        result: Any = None,
    ) -> None:
        super().__init__(f"task {task_id} ended with status {status!r}")
        self.task_id = task_id
        self.status = status
        self.progress = progress
        self.raw = raw
        self.result = result


class TaskTimeoutError(AltcraftError, TimeoutError):
    """Waiting for a task ran past its deadline; the task may still be running.

    ``resume_token`` lets another process (or a later call) pick the wait up again.
    """

    def __init__(
        self,
        task_id: str,
        *,
        timeout: float | None,
        last_status: str | None = None,
        progress: float | None = None,
        resume_token: str = "",
    ) -> None:
        super().__init__(
            f"task {task_id} not finished after {timeout}s "
            f"(last status {last_status!r}, progress {progress})"
        )
        self.task_id = task_id
        self.timeout = timeout
        self.last_status = last_status
        self.progress = progress
        self.resume_token = resume_token


class InvalidRequestError(AltcraftError, ValueError):
    """The call's arguments are invalid; nothing was sent."""


class ClientClosedError(AltcraftError, RuntimeError):
    """The client was closed, or is being used from an event loop other than its own."""


_API_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: TariffLimitError,
    403: PermissionDeniedError,
}


def api_error_for(
    code: int,
    error_text: str,
    *,
    endpoint: str = "",
    http_status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> APIError:
    """Build the most specific :class:`APIError` for an envelope error code."""
    cls = _API_ERRORS.get(code, APIError)
    return cls(code, error_text, endpoint=endpoint, http_status=http_status, headers=headers)
