"""The home gateway: reads BLE health devices, keeps every reading on disk, publishes over MQTT."""

from __future__ import annotations

from device_profiles import __version__ as __version__  # one version for the distribution

# Re-exported for callers that import the errors from the package (they live in errors.py).
from gateway.errors import EnrollmentError, GatewayError, NotEnrolledError

__all__ = ["EnrollmentError", "GatewayError", "NotEnrolledError", "__version__"]
