"""The package's root exception."""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException


class ClinicError(Exception):
    """Base of every error raised by clinic_api."""


class ConfigError(ClinicError, ValueError):
    """The settings are unusable (e.g. a placeholder secret outside the local demo)."""


class AuthError(ClinicError):
    """A bearer token could not be verified; ``reason`` says why (never echoes the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PageProblem(StarletteHTTPException):
    """An error whose ``detail`` is a Swedish sentence written for the user (a form the page
    can explain), shown on the error page; other errors' details are for developers."""


class NotFound(ClinicError):  # noqa: N818 - the name the issue and the callers use; "NotFoundError" says nothing more
    """A row that does not exist or belongs to a care unit the staff member does not work in
    (the two are not told apart, so other units' data is not revealed). app.py answers 404:
    ``{"detail": "<what> not found"}`` on the API, the Swedish page on /ui. ``detail`` replaces
    that sentence where clients already read another (e.g. "unknown enrollment code")."""

    def __init__(self, what: str, *, detail: str | None = None) -> None:
        self.what = what
        self.detail = detail or f"{what} not found"
        super().__init__(self.detail)
