"""Characteristics every device type shares: Battery Level, Device Information strings,
Current Time (to read and set device clocks) and Date Time."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar

from device_profiles.errors import DecodeError
from device_profiles.gatt import DATE_TIME_SIZE, DateTime, Uuid
from device_profiles.observation import DecodeContext, Observation


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """0x2A19 Battery Level: uint8 percent, 0-100 (GSS §3.27); 101-255 are prohibited."""

    percent: int

    characteristic: ClassVar[str] = Uuid.BATTERY_LEVEL
    name: ClassVar[str] = "Battery Level"

    @classmethod
    def from_bytes(cls, data: bytes) -> BatteryLevel:
        if len(data) != 1:
            raise DecodeError(f"Battery Level is 1 byte, got {len(data)}", data, characteristic=cls.name)
        if data[0] > 100:
            raise DecodeError(f"battery level {data[0]} above 100 %", data, characteristic=cls.name)
        return cls(data[0])

    def __bytes__(self) -> bytes:
        return bytes([self.percent])

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


# Device Information Service (0x180A) string characteristics (UTF-8, GSS §3.x "utf8s").
DEVICE_INFORMATION_STRINGS: dict[str, str] = {
    Uuid.MANUFACTURER_NAME: "manufacturer",
    Uuid.MODEL_NUMBER: "model",
    Uuid.SERIAL_NUMBER: "serial",
    Uuid.HARDWARE_REVISION: "hardware",
    Uuid.FIRMWARE_REVISION: "firmware",
    Uuid.SOFTWARE_REVISION: "software",
}


@dataclass(frozen=True, slots=True)
class InfoString:
    """A Device Information string (manufacturer, model, serial, revisions)."""

    text: str

    name: ClassVar[str] = "Device Information string"

    @classmethod
    def from_bytes(cls, data: bytes) -> InfoString:
        # utf8s has no terminator, but some devices pad with NULs or spaces.
        try:
            text = data.rstrip(b"\x00").decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise DecodeError("Device Information string is not UTF-8", data, characteristic=cls.name) from err
        if any(ord(c) < 0x20 for c in text):
            raise DecodeError("control characters in Device Information string", data, characteristic=cls.name)
        if len(text) > 128:  # wire DeviceInfo limit
            raise DecodeError("Device Information string longer than 128 characters", data, characteristic=cls.name)
        return cls(text)

    def __bytes__(self) -> bytes:
        return self.text.encode("utf-8")

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


def decode_info_string(data: bytes) -> str:
    return InfoString.from_bytes(data).text


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """0x2A08 Date Time: the bare 7-byte Date Time field (GSS §3.70)."""

    value: DateTime

    characteristic: ClassVar[str] = Uuid.DATE_TIME
    name: ClassVar[str] = "Date Time"

    @classmethod
    def from_bytes(cls, data: bytes) -> DateTimeValue:
        if len(data) != DATE_TIME_SIZE:
            raise DecodeError(f"Date Time is 7 bytes, got {len(data)}", data, characteristic=cls.name)
        return cls(DateTime.from_bytes(data))

    def __bytes__(self) -> bytes:
        return bytes(self.value)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


_CURRENT_TIME = struct.Struct("<HBBBBBBBB")

# Adjust Reason bits (GSS §3.62 "Current Time"): why the time was last changed.
ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02
ADJUST_TIME_ZONE = 0x04
ADJUST_DST = 0x08


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """0x2A2B Current Time (Current Time Service 1.1, GSS §3.62), 10 bytes:

        Exact Time 256 = Day Date Time (Date Time 7 + Day of Week uint8: 0 unknown,
        1 = Monday ... 7 = Sunday) + Fractions256 uint8 (1/256 s);
        Adjust Reason uint8 (bit0 manual, bit1 external reference, bit2 time zone change,
        bit3 DST change, bits4-7 reserved).

    The gateway reads it to measure the device's clock skew and writes it to set the clock.
    """

    time: DateTime
    day_of_week: int = 0
    fractions256: int = 0
    adjust_reason: int = 0

    characteristic: ClassVar[str] = Uuid.CURRENT_TIME
    name: ClassVar[str] = "Current Time"

    @classmethod
    def from_bytes(cls, data: bytes) -> CurrentTime:
        if len(data) != _CURRENT_TIME.size:
            raise DecodeError(f"Current Time is 10 bytes, got {len(data)}", data, characteristic=cls.name)
        y, mo, d, h, mi, s, dow, frac, reason = _CURRENT_TIME.unpack(data)
        try:
            ts = DateTime.checked(data, y, mo, d, h, mi, s)
        except DecodeError as err:
            raise DecodeError(err.reason, data, characteristic=cls.name) from err
        if dow > 7:
            raise DecodeError(f"day of week {dow} is reserved", data, characteristic=cls.name)
        if reason & 0xF0:
            raise DecodeError("reserved adjust reason bits set", data, characteristic=cls.name)
        return cls(ts, dow, frac, reason)

    @classmethod
    def at(cls, when: datetime, tz: tzinfo = UTC, *, adjust_reason: int = ADJUST_EXTERNAL_REFERENCE) -> CurrentTime:
        """The value a gateway writes to set a device clock to ``when`` in zone ``tz``."""
        local = when.astimezone(tz)
        frac = local.microsecond * 256 // 1_000_000
        return cls(DateTime.from_datetime(local, tz), local.isoweekday(), frac, adjust_reason)

    def __bytes__(self) -> bytes:
        return _CURRENT_TIME.pack(*self.time.fields(), self.day_of_week, self.fractions256, self.adjust_reason)

    def to_datetime(self, tz: tzinfo = UTC) -> datetime | None:
        base = self.time.to_datetime(tz)
        if base is None:
            return None
        return base.replace(microsecond=self.fractions256 * 1_000_000 // 256)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


def clock_offset(device_value: bytes, true_now: datetime, tz: tzinfo = UTC) -> timedelta | None:
    """The device clock minus the true time, from a Current Time (10 bytes) or Date Time
    (7 bytes) value read from the device at ``true_now``; None if its date is unknown.

    Pass the result to ``observation.to_reading(..., clock_offset=...)``. Raises
    DecodeError for a malformed value.
    """
    if len(device_value) == DATE_TIME_SIZE:
        device_now = DateTimeValue.from_bytes(device_value).value.to_datetime(tz)
    else:
        device_now = CurrentTime.from_bytes(device_value).to_datetime(tz)
    return None if device_now is None else device_now - true_now
