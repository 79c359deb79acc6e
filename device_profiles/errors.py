"""The package's exceptions: one root, data in fields."""

from __future__ import annotations


class DeviceProfilesError(ValueError):
    """Root of every error raised by device_profiles."""


class UnitError(DeviceProfilesError):
    """A unit that the vocabulary cannot convert."""


class WireFormatError(DeviceProfilesError):
    """A message or reading that does not follow the MQTT wire schema."""

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DecodeError(DeviceProfilesError):
    """GATT bytes that cannot be decoded. Carries the raw bytes and the reason."""

    def __init__(self, reason: str, raw: bytes, *, characteristic: str | None = None) -> None:
        where = f" ({characteristic})" if characteristic else ""
        super().__init__(f"{reason}{where}: {raw.hex()}")
        self.reason = reason
        self.raw = bytes(raw)
        self.characteristic = characteristic
