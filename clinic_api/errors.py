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
