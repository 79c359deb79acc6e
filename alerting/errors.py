"""The package's exceptions: one root."""

from __future__ import annotations


class AlertingError(Exception):
    """Root of every error raised by the alerting package."""
