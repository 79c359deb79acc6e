"""The package's exceptions: one root."""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error raised by ingest."""


class ConfigError(IngestError):
    """Settings that cannot work together."""
