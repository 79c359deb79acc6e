"""egenmon alerting: the vectorised rules engine, the rule registry and the alert lifecycle."""

from __future__ import annotations


class AlertingError(Exception):
    """Root of every error raised by the alerting package."""
