"""The package's exceptions: one root."""

from __future__ import annotations


class SimulatorError(RuntimeError):
    """Root of every error raised by simulators."""


class VirtualDeviceError(SimulatorError):
    """A virtual BLE device or the virtual radio refused a request (the BLE simulator's errors)."""
