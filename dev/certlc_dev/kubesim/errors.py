"""Typed API errors that render as Kubernetes `Status` objects.

Every failure the stand-in reports is one of these classes; the HTTP layer turns it into a
`Status` body with the real reason, code, message and details, mirroring apimachinery's
`errors.go`: NotFound/AlreadyExists/Conflict carry `details.kind` = the plural resource and
`details.group` outside the core group, Invalid carries the Kind and `details.causes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


class _Named(Protocol):
    """What errors need to know about a resource type (see `resources.ResourceType`)."""

    @property
    def group(self) -> str: ...
    @property
    def plural(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def group_resource(self) -> str: ...
    @property
    def qualified_kind(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure, like apimachinery's `field.Error`."""

    type: str  # "Required value", "Invalid value", "Forbidden", "Too long", ...
    field: str
    detail: str = ""
    value: str | None = None  # pre-formatted like Go's %#v ("\"x\"", "0x0")

    REASONS: ClassVar[dict[str, str]] = {
        "Required value": "FieldValueRequired",
        "Invalid value": "FieldValueInvalid",
        "Forbidden": "FieldValueForbidden",
        "Too long": "FieldValueTooLong",
        "Unsupported value": "FieldValueNotSupported",
        "Duplicate value": "FieldValueDuplicate",
    }

    def body(self) -> str:
        """The message without the field path (`Status.details.causes[].message`)."""
        text = self.type
        if self.value is not None:
            text = f"{text}: {self.value}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {
            "reason": self.REASONS.get(self.type, "FieldValueInvalid"),
            "message": self.body(),
            "field": self.field,
        }


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required value", field, detail)


def invalid(field: str, value: str, detail: str) -> FieldError:
    return FieldError("Invalid value", field, detail, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("Forbidden", field, detail)


def go_quote(value: object) -> str:
    """Go's %q for a string value (JSON string syntax is close enough for our values)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class ApiError(Exception):
    """Base class: an HTTP status code, a Kubernetes reason and a message."""

    default_code: ClassVar[int] = 500
    default_reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.code: int = code if code is not None else self.default_code
        self.reason: str = reason if reason is not None else self.default_reason

    def status(self) -> dict[str, Any]:
        """The `Status` object sent to the client."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _object_details(rt: _Named, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    return details


class BadRequest(ApiError):
    default_code = 400
    default_reason = "BadRequest"


class Unauthorized(ApiError):
    default_code = 401
    default_reason = "Unauthorized"

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class Forbidden(ApiError):
    default_code = 403
    default_reason = "Forbidden"


class NotFound(ApiError):
    default_code = 404
    default_reason = "NotFound"

    @classmethod
    def object(cls, rt: _Named, name: str) -> NotFound:
        return cls(f'{rt.group_resource} "{name}" not found', details=_object_details(rt, name))

    @classmethod
    def path(cls) -> NotFound:
        return cls("the server could not find the requested resource", details={})


class MethodNotAllowed(ApiError):
    default_code = 405
    default_reason = "MethodNotAllowed"

    def __init__(
        self, message: str = "the server does not allow this method on the requested resource"
    ) -> None:
        super().__init__(message, details={})


class NotAcceptable(ApiError):
    default_code = 406
    default_reason = "NotAcceptable"


class AlreadyExists(ApiError):
    default_code = 409
    default_reason = "AlreadyExists"

    @classmethod
    def object(cls, rt: _Named, name: str) -> AlreadyExists:
        return cls(
            f'{rt.group_resource} "{name}" already exists', details=_object_details(rt, name)
        )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class Conflict(ApiError):
    default_code = 409
    default_reason = "Conflict"

    @classmethod
    def object(cls, rt: _Named, name: str, why: str = STALE_OBJECT) -> Conflict:
        return cls(
            f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
            details=_object_details(rt, name),
        )


class Expired(ApiError):
    default_code = 410
    default_reason = "Expired"


class RequestEntityTooLarge(ApiError):
    default_code = 413
    default_reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    default_code = 415
    default_reason = "UnsupportedMediaType"


class Invalid(ApiError):
    default_code = 422
    default_reason = "Invalid"

    def __init__(self, rt: _Named, name: str, errors: Sequence[FieldError]) -> None:
        if len(errors) == 1:
            summary = str(errors[0])
        else:
            summary = "[" + ", ".join(str(e) for e in errors) + "]"
        details: dict[str, Any] = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.kind
        details["causes"] = [e.cause() for e in errors]
        super().__init__(f'{rt.qualified_kind} "{name}" is invalid: {summary}', details=details)
        self.errors = tuple(errors)


class TooManyRequests(ApiError):
    default_code = 429
    default_reason = "TooManyRequests"

    def __init__(
        self, message: str = "Too many requests, please try again later.", *, retry_after: int = 1
    ) -> None:
        super().__init__(
            message,
            details={"retryAfterSeconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class InternalError(ApiError):
    default_code = 500
    default_reason = "InternalError"

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]}
        )


class ServiceUnavailable(ApiError):
    default_code = 503
    default_reason = "ServiceUnavailable"


class Timeout(ApiError):
    default_code = 504
    default_reason = "Timeout"


REASONS_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def error_for_code(
    code: int,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ApiError:
    """An error with an arbitrary HTTP code and the reason Kubernetes uses for it."""
    return ApiError(
        message,
        details=details,
        headers=headers,
        code=code,
        reason=REASONS_BY_CODE.get(code, "Unknown"),
    )
