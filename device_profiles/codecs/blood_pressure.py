"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Layout (Blood Pressure Service 1.1, GSS §3.31 "Blood Pressure Measurement"):

    Flags                     uint8   bit0 units 0=mmHg 1=kPa; bit1 time stamp present;
                                      bit2 pulse rate present; bit3 user id present;
                                      bit4 measurement status present; bits5-7 reserved
    Systolic                  SFLOAT  (for 0x2A36: the current cuff pressure)
    Diastolic                 SFLOAT  (for 0x2A36: NaN)
    Mean Arterial Pressure    SFLOAT  (for 0x2A36: NaN)
    Time Stamp                Date Time (7)   if bit1
    Pulse Rate                SFLOAT, beats per minute    if bit2
    User ID                   uint8, 0xFF = unknown user  if bit3
    Measurement Status        uint16  if bit4:
        bit0 body movement detected; bit1 cuff fit too loose; bit2 irregular pulse;
        bits3-4 pulse rate range 0=within 1=exceeds upper 2=below lower 3=reserved;
        bit5 improper measurement position; bits6-15 reserved
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from device_profiles.codecs._common import device_time, unpack_flagged
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import SFLOAT_TABLE, Num, encode_sfloat
from device_profiles.observation import DecodeContext, Measured, Observation, measured
from device_profiles.vocabulary import Kind

F_KPA = 0x01
F_TIMESTAMP = 0x02
F_PULSE = 0x04
F_USER = 0x08
F_STATUS = 0x10
F_RESERVED = 0xE0

S_BODY_MOVEMENT = 0x0001
S_CUFF_LOOSE = 0x0002
S_IRREGULAR_PULSE = 0x0004
S_PULSE_RANGE_MASK = 0x0018  # bits 3-4
S_PULSE_EXCEEDS_UPPER = 0x0008
S_PULSE_BELOW_LOWER = 0x0010
S_IMPROPER_POSITION = 0x0020
S_RESERVED = 0xFFC0

USER_UNKNOWN = 0xFF


def _layout(flags: int) -> struct.Struct:
    fmt = "<BHHH"
    if flags & F_TIMESTAMP:
        fmt += "HBBBBB"
    if flags & F_PULSE:
        fmt += "H"
    if flags & F_USER:
        fmt += "B"
    if flags & F_STATUS:
        fmt += "H"
    return struct.Struct(fmt)


# One precompiled struct per flag combination: a decode is one length check and one unpack.
_LAYOUTS: tuple[struct.Struct, ...] = tuple(_layout(f) for f in range(0x20))


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """A blood pressure measurement as the cuff sends it (pressures in ``unit``)."""

    systolic: Num
    diastolic: Num
    mean_arterial: Num
    kpa: bool = False
    timestamp: DateTime | None = None
    pulse_rate: Num | None = None
    user_id: int | None = None
    status: int | None = None

    characteristic: ClassVar[str] = Uuid.BLOOD_PRESSURE_MEASUREMENT
    name: ClassVar[str] = "Blood Pressure Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> BloodPressureMeasurement:
        flags, f = unpack_flagged(data, F_RESERVED, _LAYOUTS, cls.name)
        i = 4
        ts = None
        if flags & F_TIMESTAMP:
            ts = DateTime.checked(data, f[4], f[5], f[6], f[7], f[8], f[9])
            i = 10
        pulse = None
        if flags & F_PULSE:
            pulse = SFLOAT_TABLE[f[i]]
            i += 1
        user = None
        if flags & F_USER:
            user = f[i]
            i += 1
        status = None
        if flags & F_STATUS:
            status = f[i]
            if status & S_RESERVED:
                raise DecodeError(
                    f"reserved measurement status bits set (0x{status:04x})", data, characteristic=cls.name
                )
            if status & S_PULSE_RANGE_MASK == S_PULSE_RANGE_MASK:
                raise DecodeError("reserved pulse rate range value 3", data, characteristic=cls.name)
        return cls(
            SFLOAT_TABLE[f[1]], SFLOAT_TABLE[f[2]], SFLOAT_TABLE[f[3]], bool(flags & F_KPA), ts, pulse, user, status
        )

    @property
    def flags(self) -> int:
        flags = F_KPA if self.kpa else 0
        if self.timestamp is not None:
            flags |= F_TIMESTAMP
        if self.pulse_rate is not None:
            flags |= F_PULSE
        if self.user_id is not None:
            flags |= F_USER
        if self.status is not None:
            flags |= F_STATUS
        return flags

    def __bytes__(self) -> bytes:
        flags = self.flags
        args: list[int] = [flags, encode_sfloat(self.systolic), encode_sfloat(self.diastolic)]
        args.append(encode_sfloat(self.mean_arterial))
        if self.timestamp is not None:
            args.extend(self.timestamp.fields())
        if self.pulse_rate is not None:
            args.append(encode_sfloat(self.pulse_rate))
        if self.user_id is not None:
            args.append(self.user_id)
        if self.status is not None:
            args.append(self.status)
        return _LAYOUTS[flags].pack(*args)

    def status_flags(self) -> set[str]:
        """The wire flags (wire.KNOWN_FLAGS) for the measurement status bits."""
        s = self.status
        out: set[str] = set()
        if not s:
            return out
        if s & S_BODY_MOVEMENT:
            out.add("body_movement")
        if s & S_CUFF_LOOSE:
            out.add("cuff_fit_loose")
        if s & S_IRREGULAR_PULSE:
            out.add("irregular_pulse")
        rng = s & S_PULSE_RANGE_MASK
        if rng == S_PULSE_EXCEEDS_UPPER:
            out.add("pulse_rate_exceeds_upper")
        elif rng == S_PULSE_BELOW_LOWER:
            out.add("pulse_rate_below_lower")
        if s & S_IMPROPER_POSITION:
            out.add("improper_position")
        return out

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        unit = "kPa" if self.kpa else "mm[Hg]"
        values: dict[str, Measured] = {
            "systolic": measured(self.systolic, unit),
            "diastolic": measured(self.diastolic, unit),
            "mean_arterial": measured(self.mean_arterial, unit),
        }
        if self.pulse_rate is not None:
            values["pulse"] = measured(self.pulse_rate, "/min")
        when, unset = device_time(self.timestamp, ctx)
        extras: dict[str, object] = {} if self.user_id is None else {"user_id": self.user_id}
        return [
            Observation(
                Kind.BLOOD_PRESSURE,
                values,
                frozenset(self.status_flags()),
                when,
                unset,
                None,
                raw,
                self.characteristic,
                ctx.received_at,
                ctx.device,
                extras,
            )
        ]


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """0x2A36: same layout; only the current cuff pressure is meaningful (the other two
    pressures are NaN). Shown on the gateway's display, never stored as a reading."""

    cuff_pressure: Num
    kpa: bool = False
    timestamp: DateTime | None = None
    pulse_rate: Num | None = None
    user_id: int | None = None
    status: int | None = None

    characteristic: ClassVar[str] = Uuid.INTERMEDIATE_CUFF_PRESSURE
    name: ClassVar[str] = "Intermediate Cuff Pressure"

    @classmethod
    def from_bytes(cls, data: bytes) -> IntermediateCuffPressure:
        try:
            m = BloodPressureMeasurement.from_bytes(data)
        except DecodeError as err:
            raise DecodeError(err.reason, data, characteristic=cls.name) from err
        return cls(m.systolic, m.kpa, m.timestamp, m.pulse_rate, m.user_id, m.status)

    def __bytes__(self) -> bytes:
        nan = SFLOAT_TABLE[0x07FF]
        return bytes(
            BloodPressureMeasurement(
                self.cuff_pressure, nan, nan, self.kpa, self.timestamp, self.pulse_rate, self.user_id, self.status
            )
        )

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []
