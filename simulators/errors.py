"""The package's exceptions: one root."""

from __future__ import annotations


class SimulatorError(RuntimeError):
    """Root of every error raised by simulators."""
