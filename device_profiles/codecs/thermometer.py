"""Temperature Measurement (0x2A1C) and Intermediate Temperature (0x2A1E).

Health Thermometer Service 1.0 (GSS "Temperature Measurement"):

    Flags                  uint8  bit0 units 0=Celsius 1=Fahrenheit; bit1 time stamp
                                  present; bit2 temperature type present; bits3-7 reserved
    Temperature            FLOAT (32-bit IEEE 11073)
    Time Stamp             Date Time (7)   if bit1
    Temperature Type       uint8           if bit2: 1 armpit, 2 body (general), 3 ear
                                           (usually earlobe), 4 finger, 5 gastro-intestinal
                                           tract, 6 mouth, 7 rectum, 8 toe, 9 tympanum
                                           (ear drum); 0 and 10-255 reserved
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from device_profiles.codecs._common import device_time, unpack_flagged
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Num, decode_float, encode_float
from device_profiles.observation import DecodeContext, Observation, measured
from device_profiles.vocabulary import Kind

F_FAHRENHEIT = 0x01
F_TIMESTAMP = 0x02
F_TYPE = 0x04
F_RESERVED = 0xF8

TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


def _layout(flags: int) -> struct.Struct:
    fmt = "<BI"
    if flags & F_TIMESTAMP:
        fmt += "HBBBBB"
    if flags & F_TYPE:
        fmt += "B"
    return struct.Struct(fmt)


_LAYOUTS = tuple(_layout(f) for f in range(0x08))


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    temperature: Num  # in °C, or °F when fahrenheit
    fahrenheit: bool = False
    timestamp: DateTime | None = None
    temperature_type: int | None = None

    characteristic: ClassVar[str] = Uuid.TEMPERATURE_MEASUREMENT
    name: ClassVar[str] = "Temperature Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> TemperatureMeasurement:
        flags, f = unpack_flagged(data, F_RESERVED, _LAYOUTS, cls.name)
        ts = ttype = None
        i = 2
        if flags & F_TIMESTAMP:
            ts = DateTime.checked(data, *f[2:8])
            i = 8
        if flags & F_TYPE:
            ttype = f[i]
            if ttype not in TEMPERATURE_TYPES:
                raise DecodeError(f"reserved temperature type {ttype}", data, characteristic=cls.name)
        return cls(decode_float(f[1]), bool(flags & F_FAHRENHEIT), ts, ttype)

    def __bytes__(self) -> bytes:
        flags = F_FAHRENHEIT if self.fahrenheit else 0
        args = [0, encode_float(self.temperature)]
        if self.timestamp is not None:
            flags |= F_TIMESTAMP
            args += self.timestamp.fields()
        if self.temperature_type is not None:
            flags |= F_TYPE
            args.append(self.temperature_type)
        args[0] = flags
        return _LAYOUTS[flags].pack(*args)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        when, unset = device_time(self.timestamp, ctx)
        value = measured(self.temperature, "[degF]" if self.fahrenheit else "Cel")
        extras: dict[str, object] = {}
        if self.temperature_type is not None:
            extras["site"] = TEMPERATURE_TYPES[self.temperature_type]
        return [
            Observation(
                Kind.TEMPERATURE, {"temperature": value}, frozenset(), when, unset, None, raw,
                self.characteristic, ctx.received_at, ctx.device, extras,
            )
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class IntermediateTemperature:
    """0x2A1E: same layout, sent while measuring; shown live, never stored."""

    measurement: TemperatureMeasurement

    characteristic: ClassVar[str] = Uuid.INTERMEDIATE_TEMPERATURE
    name: ClassVar[str] = "Intermediate Temperature"

    @classmethod
    def from_bytes(cls, data: bytes) -> IntermediateTemperature:
        return cls(TemperatureMeasurement.from_bytes(data))

    def __bytes__(self) -> bytes:
        return bytes(self.measurement)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []
