"""Errors of the OLT back end, each carrying the HTTP status it maps to."""

from __future__ import annotations

from typing import Any


class OltError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"status": self.status, "title": self.title, "detail": self.detail}
        error.update(self.extra)
        return {"errors": [error]}

    def headers(self) -> dict[str, str]:
        """Response headers the status calls for."""
        return {}


class OltInputError(OltError, ValueError):
    """The request itself is wrong (syntax, types, schema, size)."""

    status = 400
    title = "Bad Request"


class InvalidDocument(OltInputError):
    """Well-formed JSON that breaks a schema or a rule."""

    status = 422
    title = "Unprocessable Entity"


class BodyTooLarge(OltInputError):
    status = 413
    title = "Payload Too Large"


class RangeNotSatisfiable(OltInputError):
    status = 416
    title = "Range Not Satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the blob has {size} bytes")
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}  # RFC 9110 §14.4


class Unauthorized(OltError):
    status = 401
    title = "Unauthorized"

    def headers(self) -> dict[str, str]:
        code = self.extra.get("code", "invalid_token")
        return {"WWW-Authenticate": f'Bearer realm="olt", error="{code}"'}  # RFC 6750 §3


class Forbidden(OltError):
    """A valid token whose scope does not cover the operation (device tokens)."""

    status = 403
    title = "Forbidden"


class NotFound(OltError):
    """Missing, or belonging to another tenant: OLT answers both alike."""

    status = 404
    title = "Not Found"


class Conflict(OltError):
    status = 409
    title = "Conflict"


class Gone(OltError):
    """An installation that is no longer active (hawkBit DDI answers 410 likewise)."""

    status = 410
    title = "Gone"


class Locked(OltError):
    """A firmware whose blob is already attached."""

    status = 423
    title = "Locked"
