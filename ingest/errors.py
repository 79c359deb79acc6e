"""The package's exceptions: one root."""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error raised by ingest."""


class ConfigError(IngestError):
    """Settings that cannot work together."""


class DataProblemError(IngestError):
    """A batch that PostgreSQL refuses for what is in it (not for being unreachable)."""
