"""Weight Measurement (0x2A9D) and Body Composition Measurement (0x2A9C).

Weight Measurement (Weight Scale Service 1.0; GSS "Weight Measurement"):

    Flags        uint8   bit0 units 0=SI (kg, m) 1=imperial (lb, in); bit1 time stamp
                         present; bit2 user id present; bit3 BMI and height present;
                         bits4-7 reserved
    Weight       uint16  SI: 0.005 kg; imperial: 0.01 lb; 0xFFFF = measurement unsuccessful
    Time Stamp   Date Time (7)         if bit1
    User ID      uint8 (0xFF unknown)  if bit2
    BMI          uint16  0.1 kg/m2     if bit3
    Height       uint16  SI: 0.001 m; imperial: 0.1 in     if bit3

Body Composition Measurement (Body Composition Service 1.0; GSS "Body Composition
Measurement"):

    Flags                uint16  bit0 units; bit1 time stamp; bit2 user id; bit3 basal
                                 metabolism; bit4 muscle %; bit5 muscle mass; bit6 fat free
                                 mass; bit7 soft lean mass; bit8 body water mass;
                                 bit9 impedance; bit10 weight; bit11 height;
                                 bit12 multiple packet measurement; bits13-15 reserved
    Body Fat Percentage  uint16 0.1 % (0xFFFF = measurement unsuccessful)
    then, each if its bit is set, in this order: Time Stamp (7), User ID uint8,
    Basal Metabolism uint16 kJ, Muscle Percentage uint16 0.1 %, Muscle Mass,
    Fat Free Mass, Soft Lean Mass, Body Water Mass (masses uint16 at the weight
    resolution), Impedance uint16 0.1 ohm, Weight uint16, Height uint16.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from device_profiles.codecs._common import device_time, unpack_flagged
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import DecodeContext, Measured, Observation, measured
from device_profiles.vocabulary import Kind, Unit

W_IMPERIAL = 0x01
W_TIMESTAMP = 0x02
W_USER = 0x04
W_BMI_HEIGHT = 0x08
W_RESERVED = 0xF0

UNSUCCESSFUL = 0xFFFF


# Resolutions. Decoding divides exact integers (raw * 5 / 1000, raw / 100), so a value
# decodes to the same float every time and encoding recovers the raw integer exactly.
def mass_from_raw(raw: int, imperial: bool) -> float:
    return raw / 100 if imperial else raw * 5 / 1000


def mass_to_raw(value: float, imperial: bool) -> int:
    return round(value * 100) if imperial else round(value * 1000 / 5)


def height_from_raw(raw: int, imperial: bool) -> float:
    return raw / 10 if imperial else raw / 1000


def height_to_raw(value: float, imperial: bool) -> int:
    return round(value * 10) if imperial else round(value * 1000)


def _layout(flags: int) -> struct.Struct:
    fmt = "<BH"
    if flags & W_TIMESTAMP:
        fmt += "HBBBBB"
    if flags & W_USER:
        fmt += "B"
    if flags & W_BMI_HEIGHT:
        fmt += "HH"
    return struct.Struct(fmt)


_LAYOUTS = tuple(_layout(f) for f in range(0x10))


def _mass_measured(value: float | None, imperial: bool) -> Measured:
    if value is None:  # "measurement unsuccessful"
        return Measured(None, Unit.KG, special=Special.NAN)
    return measured(value, "lb" if imperial else "kg")


def _height_measured(value: float, imperial: bool) -> Measured:
    return measured(value, "[in_i]" if imperial else "m")


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    weight: float | None  # kg or lb; None = measurement unsuccessful
    imperial: bool = False
    timestamp: DateTime | None = None
    user_id: int | None = None
    bmi: float | None = None
    height: float | None = None  # m or in; sent together with bmi

    characteristic: ClassVar[str] = Uuid.WEIGHT_MEASUREMENT
    name: ClassVar[str] = "Weight Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> WeightMeasurement:
        flags, f = unpack_flagged(data, W_RESERVED, _LAYOUTS, cls.name)
        imperial = bool(flags & W_IMPERIAL)
        weight = None if f[1] == UNSUCCESSFUL else mass_from_raw(f[1], imperial)
        i = 2
        ts = user = bmi = height = None
        if flags & W_TIMESTAMP:
            ts = DateTime.checked(data, *f[2:8])
            i = 8
        if flags & W_USER:
            user = f[i]
            i += 1
        if flags & W_BMI_HEIGHT:
            bmi, height = f[i] / 10, height_from_raw(f[i + 1], imperial)
        return cls(weight, imperial, ts, user, bmi, height)

    def __bytes__(self) -> bytes:
        flags = W_IMPERIAL if self.imperial else 0
        weight = UNSUCCESSFUL if self.weight is None else mass_to_raw(self.weight, self.imperial)
        args = [0, weight]
        if self.timestamp is not None:
            flags |= W_TIMESTAMP
            args += self.timestamp.fields()
        if self.user_id is not None:
            flags |= W_USER
            args.append(self.user_id)
        if self.bmi is not None:
            flags |= W_BMI_HEIGHT
            args += [round(self.bmi * 10), height_to_raw(self.height or 0.0, self.imperial)]
        args[0] = flags
        return _LAYOUTS[flags].pack(*args)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        values = {"weight": _mass_measured(self.weight, self.imperial)}
        if self.bmi is not None and self.height is not None:
            values["bmi"] = measured(self.bmi, "kg/m2")
            values["height"] = _height_measured(self.height, self.imperial)
        when, unset = device_time(self.timestamp, ctx)
        extras: dict[str, object] = {} if self.user_id is None else {"user_id": self.user_id}
        return [
            Observation(
                Kind.WEIGHT, values, frozenset(), when, unset, None, raw,
                self.characteristic, ctx.received_at, ctx.device, extras,
            )
        ]  # fmt: skip


# Body Composition flags.
B_IMPERIAL = 0x0001
B_TIMESTAMP = 0x0002
B_USER = 0x0004
B_BASAL_METABOLISM = 0x0008
B_MUSCLE_PCT = 0x0010
B_MUSCLE_MASS = 0x0020
B_FAT_FREE_MASS = 0x0040
B_SOFT_LEAN_MASS = 0x0080
B_BODY_WATER_MASS = 0x0100
B_IMPEDANCE = 0x0200
B_WEIGHT = 0x0400
B_HEIGHT = 0x0800
B_MULTIPLE_PACKET = 0x1000
B_RESERVED = 0xE000

_U16 = struct.Struct("<H")
_DATE_TIME = struct.Struct("<HBBBBB")


@dataclass(frozen=True, slots=True)
class BodyCompositionMeasurement:
    body_fat_pct: float | None  # None = measurement unsuccessful
    imperial: bool = False
    timestamp: DateTime | None = None
    user_id: int | None = None
    basal_metabolism_kj: int | None = None
    muscle_pct: float | None = None
    muscle_mass: float | None = None  # kg or lb, like the other masses
    fat_free_mass: float | None = None
    soft_lean_mass: float | None = None
    body_water_mass: float | None = None
    impedance_ohm: float | None = None
    weight: float | None = None
    height: float | None = None  # m or in
    multiple_packet: bool = False

    characteristic: ClassVar[str] = Uuid.BODY_COMPOSITION_MEASUREMENT
    name: ClassVar[str] = "Body Composition Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> BodyCompositionMeasurement:
        n = cls.name
        if len(data) < 2:
            raise DecodeError("truncated: no flags", data, characteristic=n)
        flags = data[0] | data[1] << 8
        if flags & B_RESERVED:
            raise DecodeError(f"reserved flag bits set (0x{flags & B_RESERVED:x})", data, characteristic=n)
        size = 4 + (7 if flags & B_TIMESTAMP else 0) + (1 if flags & B_USER else 0)
        size += 2 * bin(flags & 0x0FF8).count("1")  # bits 3-11: one uint16 field each
        if len(data) != size:
            what = "truncated" if len(data) < size else "trailing bytes"
            raise DecodeError(
                f"{what}: flags 0x{flags:04x} announce {size} bytes, got {len(data)}", data, characteristic=n
            )
        imperial = bool(flags & B_IMPERIAL)
        fat_raw = data[2] | data[3] << 8
        fat = None if fat_raw == UNSUCCESSFUL else fat_raw / 10
        i = 4
        ts = user = None
        if flags & B_TIMESTAMP:
            ts = DateTime.checked(data, *_DATE_TIME.unpack_from(data, 4))
            i = 11
        if flags & B_USER:
            user = data[i]
            i += 1
        fields: list[int | None] = []
        for bit in (B_BASAL_METABOLISM, B_MUSCLE_PCT, B_MUSCLE_MASS, B_FAT_FREE_MASS, B_SOFT_LEAN_MASS,
                    B_BODY_WATER_MASS, B_IMPEDANCE, B_WEIGHT, B_HEIGHT):  # fmt: skip
            if flags & bit:
                fields.append(data[i] | data[i + 1] << 8)
                i += 2
            else:
                fields.append(None)
        bmr, mpct, mmass, ffm, slm, bwm, imp, wt, ht = fields

        def mass(raw: int | None) -> float | None:
            return None if raw is None else mass_from_raw(raw, imperial)

        return cls(
            fat, imperial, ts, user, bmr,
            None if mpct is None else mpct / 10,
            mass(mmass), mass(ffm), mass(slm), mass(bwm),
            None if imp is None else imp / 10,
            mass(wt),
            None if ht is None else height_from_raw(ht, imperial),
            bool(flags & B_MULTIPLE_PACKET),
        )  # fmt: skip

    def __bytes__(self) -> bytes:
        imp = self.imperial
        flags = (B_IMPERIAL if imp else 0) | (B_MULTIPLE_PACKET if self.multiple_packet else 0)
        body = _U16.pack(UNSUCCESSFUL if self.body_fat_pct is None else round(self.body_fat_pct * 10))
        if self.timestamp is not None:
            flags |= B_TIMESTAMP
            body += bytes(self.timestamp)
        if self.user_id is not None:
            flags |= B_USER
            body += bytes([self.user_id])
        optional: list[tuple[int, int | None]] = [
            (B_BASAL_METABOLISM, self.basal_metabolism_kj),
            (B_MUSCLE_PCT, None if self.muscle_pct is None else round(self.muscle_pct * 10)),
            (B_MUSCLE_MASS, None if self.muscle_mass is None else mass_to_raw(self.muscle_mass, imp)),
            (B_FAT_FREE_MASS, None if self.fat_free_mass is None else mass_to_raw(self.fat_free_mass, imp)),
            (B_SOFT_LEAN_MASS, None if self.soft_lean_mass is None else mass_to_raw(self.soft_lean_mass, imp)),
            (B_BODY_WATER_MASS, None if self.body_water_mass is None else mass_to_raw(self.body_water_mass, imp)),
            (B_IMPEDANCE, None if self.impedance_ohm is None else round(self.impedance_ohm * 10)),
            (B_WEIGHT, None if self.weight is None else mass_to_raw(self.weight, imp)),
            (B_HEIGHT, None if self.height is None else height_to_raw(self.height, imp)),
        ]
        for bit, raw in optional:
            if raw is not None:
                flags |= bit
                body += _U16.pack(raw)
        return _U16.pack(flags) + body

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        values: dict[str, Measured] = {
            "body_fat": Measured(None, Unit.PERCENT, special=Special.NAN)
            if self.body_fat_pct is None
            else measured(self.body_fat_pct, "%")
        }
        if self.weight is not None:
            values["weight"] = _mass_measured(self.weight, self.imperial)
        if self.height is not None:
            values["height"] = _height_measured(self.height, self.imperial)
        when, unset = device_time(self.timestamp, ctx)
        extras: dict[str, object] = {"multiple_packet": self.multiple_packet}
        for name in ("user_id", "basal_metabolism_kj", "muscle_pct", "impedance_ohm"):
            v = getattr(self, name)
            if v is not None:
                extras[name] = v
        return [
            Observation(
                Kind.BODY_COMPOSITION, values, frozenset(), when, unset, None, raw,
                self.characteristic, ctx.received_at, ctx.device, extras,
            )
        ]  # fmt: skip
