"""Typed Kubernetes API errors, free of the client library so any layer may catch them.

Two families, mirroring how a handler reacts: `RetryableKubeError` (429, 5xx, a dropped
connection: try again later) and the rest, which retrying the same call cannot fix (404, 409,
422, 403 ...). A 409 Conflict is retryable only after re-reading the object, which is the
caller's decision, so it is not a `RetryableKubeError`.
"""

from __future__ import annotations


class KubeError(Exception):
    """A failed Kubernetes API call: HTTP status, the Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    """Stale resourceVersion or failed precondition: re-read, then decide again."""


class Invalid(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Unauthorized(KubeError):
    pass


class Gone(KubeError):
    """410: the resourceVersion a watch asked for is no longer in the server's history."""


class RetryableKubeError(KubeError):
    """429, 5xx or a transport failure: the same call may succeed later."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after


_BY_STATUS: dict[int, tuple[type[KubeError], str]] = {
    401: (Unauthorized, "Unauthorized"),
    403: (Forbidden, "Forbidden"),
    404: (NotFound, "NotFound"),
    409: (Conflict, "Conflict"),
    410: (Gone, "Expired"),
    422: (Invalid, "Invalid"),
}


def classify(status: int, reason: str, message: str, retry_after: float | None = None) -> KubeError:
    """The typed error for an HTTP status and Status reason."""
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(status, reason, message)
    if status in _BY_STATUS:
        cls, default_reason = _BY_STATUS[status]
        return cls(status, reason or default_reason, message)
    if status == 429 or status >= 500 or status == 0:
        return RetryableKubeError(status, reason or "ServerError", message, retry_after)
    return KubeError(status, reason or "BadRequest", message)
