"""GATT building blocks shared by the codecs: UUIDs and the Date Time field.

References: Bluetooth SIG "Assigned Numbers" (16-bit UUIDs) and "GATT Specification
Supplement" (GSS) §3.70 Date Time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from device_profiles.errors import DecodeError

# The Bluetooth Base UUID: a 16-bit UUID xxxx stands for 0000xxxx-0000-1000-8000-00805f9b34fb.
_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The full lowercase 128-bit UUID string of a SIG 16-bit UUID (bleak's spelling)."""
    return f"0000{short:04x}{_BASE_SUFFIX}"


def normalize_uuid(value: str | int) -> str:
    """Accept 0x2A35, "2a35", "0x2A35", "00002a35" or a full UUID; return the full form."""
    if isinstance(value, int):
        return uuid16(value)
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) == 4:
        return uuid16(int(text, 16))
    if len(text) == 8:
        return f"{text}{_BASE_SUFFIX}"
    if len(text) == 36 and text.count("-") == 4:
        int(text.replace("-", ""), 16)  # raises ValueError when not hex
        return text
    if len(text) == 32:
        int(text, 16)
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    raise ValueError(f"not a UUID: {value!r}")


class Uuid:
    """16-bit SIG UUIDs used by egenmon, as full strings."""

    # Services
    BLOOD_PRESSURE = uuid16(0x1810)
    GLUCOSE = uuid16(0x1808)
    CGM = uuid16(0x181F)
    WEIGHT_SCALE = uuid16(0x181D)
    BODY_COMPOSITION = uuid16(0x181B)
    PULSE_OXIMETER = uuid16(0x1822)
    HEALTH_THERMOMETER = uuid16(0x1809)
    CURRENT_TIME_SERVICE = uuid16(0x1805)
    DEVICE_INFORMATION = uuid16(0x180A)
    BATTERY = uuid16(0x180F)
    # Characteristics
    BLOOD_PRESSURE_MEASUREMENT = uuid16(0x2A35)
    INTERMEDIATE_CUFF_PRESSURE = uuid16(0x2A36)
    BLOOD_PRESSURE_FEATURE = uuid16(0x2A49)
    GLUCOSE_MEASUREMENT = uuid16(0x2A18)
    GLUCOSE_MEASUREMENT_CONTEXT = uuid16(0x2A34)
    GLUCOSE_FEATURE = uuid16(0x2A51)
    RECORD_ACCESS_CONTROL_POINT = uuid16(0x2A52)
    CGM_MEASUREMENT = uuid16(0x2AA7)
    CGM_FEATURE = uuid16(0x2AA8)
    CGM_STATUS = uuid16(0x2AA9)
    CGM_SESSION_START_TIME = uuid16(0x2AAA)
    CGM_SESSION_RUN_TIME = uuid16(0x2AAB)
    CGM_SPECIFIC_OPS_CONTROL_POINT = uuid16(0x2AAC)
    WEIGHT_MEASUREMENT = uuid16(0x2A9D)
    WEIGHT_SCALE_FEATURE = uuid16(0x2A9E)
    BODY_COMPOSITION_MEASUREMENT = uuid16(0x2A9C)
    BODY_COMPOSITION_FEATURE = uuid16(0x2A9B)
    PLX_SPOT_CHECK_MEASUREMENT = uuid16(0x2A5E)
    PLX_CONTINUOUS_MEASUREMENT = uuid16(0x2A5F)
    PLX_FEATURES = uuid16(0x2A60)
    TEMPERATURE_MEASUREMENT = uuid16(0x2A1C)
    TEMPERATURE_TYPE = uuid16(0x2A1D)
    INTERMEDIATE_TEMPERATURE = uuid16(0x2A1E)
    CURRENT_TIME = uuid16(0x2A2B)
    LOCAL_TIME_INFORMATION = uuid16(0x2A0F)
    DATE_TIME = uuid16(0x2A08)
    MANUFACTURER_NAME = uuid16(0x2A29)
    MODEL_NUMBER = uuid16(0x2A24)
    SERIAL_NUMBER = uuid16(0x2A25)
    HARDWARE_REVISION = uuid16(0x2A27)
    FIRMWARE_REVISION = uuid16(0x2A26)
    SOFTWARE_REVISION = uuid16(0x2A28)
    SYSTEM_ID = uuid16(0x2A23)
    BATTERY_LEVEL = uuid16(0x2A19)


# A device clock that reports a year before this was almost certainly reset (battery
# change, first use): devices restart at 1970, 2000, 2001 or their firmware's build year.
# No egenmon reading can predate 2010, so anything earlier is treated as "clock unset".
CLOCK_PLAUSIBLE_FROM_YEAR = 2010

DATE_TIME_STRUCT = struct.Struct("<HBBBBB")  # GSS §3.70: year uint16, month..seconds uint8
DATE_TIME_SIZE = DATE_TIME_STRUCT.size  # 7


@dataclass(frozen=True, slots=True)
class DateTime:
    """The GATT Date Time field, exactly as sent (0 in year/month/day = "not known").

    Holds the device's wall-clock time, which has no time zone; the zone the gateway set
    the clock in is applied by :meth:`to_datetime`.
    """

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def checked(  # noqa: PLR0917 - positional on purpose: called with unpacked struct fields
        cls, raw: bytes, year: int, month: int, day: int, hours: int, minutes: int, seconds: int
    ) -> DateTime:
        """Build from unpacked fields; raise DecodeError for values the GSS forbids."""
        # GSS §3.70: year 1582-9999 or 0 (unknown); month 0-12; day 0-31; hours 0-23;
        # minutes and seconds 0-59. Anything else, or a day the month does not have
        # (31 April), is an impossible date and the whole value is rejected.
        if (
            (year != 0 and not 1582 <= year <= 9999)
            or month > 12
            or day > 31
            or hours > 23
            or minutes > 59
            or seconds > 59
        ):
            raise DecodeError("impossible date/time", raw)
        if year and month and day:
            try:
                datetime(year, month, day)
            except ValueError as err:
                raise DecodeError("impossible date/time", raw) from err
        return cls(year, month, day, hours, minutes, seconds)

    @classmethod
    def from_bytes(cls, data: bytes) -> DateTime:
        if len(data) != DATE_TIME_SIZE:
            raise DecodeError("Date Time needs 7 bytes", data)
        return cls.checked(data, *DATE_TIME_STRUCT.unpack(data))

    @classmethod
    def from_datetime(cls, value: datetime, tz: tzinfo = UTC) -> DateTime:
        """The wall-clock fields of ``value`` in ``tz`` (what a gateway writes to a device)."""
        local = value.astimezone(tz) if value.tzinfo else value
        return cls(local.year, local.month, local.day, local.hour, local.minute, local.second)

    def fields(self) -> tuple[int, int, int, int, int, int]:
        return (self.year, self.month, self.day, self.hours, self.minutes, self.seconds)

    def __bytes__(self) -> bytes:
        return DATE_TIME_STRUCT.pack(*self.fields())

    @property
    def is_known(self) -> bool:
        return bool(self.year and self.month and self.day)

    @property
    def clock_unset(self) -> bool:
        """True when the device clock looks never set (unknown date or a reset year)."""
        return not self.is_known or self.year < CLOCK_PLAUSIBLE_FROM_YEAR

    def to_datetime(self, tz: tzinfo = UTC) -> datetime | None:
        """The instant in UTC, reading the wall clock in ``tz``; None if the date is unknown."""
        if not self.is_known:
            return None
        local = datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds, tzinfo=tz)
        return local if tz is UTC else local.astimezone(UTC)
