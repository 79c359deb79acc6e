"""The package's exceptions: one root."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises."""


class NotEnrolledError(GatewayError):
    """The gateway has no identity yet: run ``enroll`` first."""


class EnrollmentError(GatewayError):
    """The clinic API refused or could not complete an enrollment."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason if status_code is None else f"{reason} (HTTP {status_code})")
        self.reason = reason
        self.status_code = status_code
