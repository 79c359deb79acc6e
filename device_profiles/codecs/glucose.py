"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34).

Glucose Measurement (Glucose Service 1.0, GSS "Glucose Measurement"):

    Flags                      uint8  bit0 time offset present; bit1 concentration, type
                                      and sample location present; bit2 concentration
                                      units 0=kg/L 1=mol/L; bit3 sensor status annunciation
                                      present; bit4 context information follows; bits5-7 reserved
    Sequence Number            uint16
    Base Time                  Date Time (7)
    Time Offset                sint16, minutes        if bit0
    Glucose Concentration      SFLOAT (kg/L or mol/L) if bit1
    Type-Sample Location       uint8: type = low nibble, sample location = high nibble  if bit1
    Sensor Status Annunciation uint16                 if bit3

The measurement time is Base Time + Time Offset. Concentrations come in SI base units:
100 mg/dL is sent as 0.001 kg/L (e.g. mantissa 100, exponent -5) and 5.5 mmol/L as
0.0055 mol/L.

Glucose Measurement Context:

    Flags                 uint8  bit0 carbohydrate id + carbohydrate present; bit1 meal;
                                 bit2 tester-health; bit3 exercise duration + intensity;
                                 bit4 medication id + medication; bit5 medication units
                                 0=kg 1=litres; bit6 HbA1c; bit7 extended flags present
    Sequence Number       uint16 (same as the measurement it annotates)
    Extended Flags        uint8 (all reserved)          if bit7
    Carbohydrate ID       uint8, Carbohydrate SFLOAT kg if bit0
    Meal                  uint8                          if bit1
    Tester-Health         uint8: tester low nibble, health high nibble   if bit2
    Exercise Duration     uint16 s (0xFFFF = overrun), Exercise Intensity uint8 %  if bit3
    Medication ID         uint8, Medication SFLOAT (kg or L)             if bit4
    HbA1c                 SFLOAT %                                       if bit6
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from device_profiles.codecs._common import unpack_flagged
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import SFLOAT_TABLE, Num, Special, encode_sfloat
from device_profiles.observation import Censored, DecodeContext, Measured, Observation, measured
from device_profiles.vocabulary import Kind, Unit

# --- Glucose Measurement -------------------------------------------------------------
F_TIME_OFFSET = 0x01
F_CONCENTRATION = 0x02
F_MOL_PER_L = 0x04
F_STATUS = 0x08
F_CONTEXT_FOLLOWS = 0x10
F_RESERVED = 0xE0

# Sample type (low nibble of Type-Sample Location). 0 and 11-15 are reserved.
TYPE_CAPILLARY_WHOLE_BLOOD = 1
TYPE_CAPILLARY_PLASMA = 2
TYPE_VENOUS_WHOLE_BLOOD = 3
TYPE_VENOUS_PLASMA = 4
TYPE_ARTERIAL_WHOLE_BLOOD = 5
TYPE_ARTERIAL_PLASMA = 6
TYPE_UNDETERMINED_WHOLE_BLOOD = 7
TYPE_UNDETERMINED_PLASMA = 8
TYPE_ISF = 9  # interstitial fluid
TYPE_CONTROL_SOLUTION = 10
# Sample location (high nibble). 0 and 5-14 are reserved; 15 = not available.
LOCATION_FINGER = 1
LOCATION_AST = 2  # alternate site test
LOCATION_EARLOBE = 3
LOCATION_CONTROL_SOLUTION = 4
LOCATION_NOT_AVAILABLE = 15
_VALID_LOCATIONS = frozenset({1, 2, 3, 4, 15})

# Sensor Status Annunciation bits.
SS_BATTERY_LOW = 0x0001
SS_SENSOR_MALFUNCTION = 0x0002
SS_SAMPLE_SIZE_INSUFFICIENT = 0x0004
SS_STRIP_INSERTION_ERROR = 0x0008
SS_STRIP_TYPE_INCORRECT = 0x0010
SS_RESULT_TOO_HIGH = 0x0020  # higher than the device can process
SS_RESULT_TOO_LOW = 0x0040  # lower than the device can process
SS_TEMPERATURE_TOO_HIGH = 0x0080
SS_TEMPERATURE_TOO_LOW = 0x0100
SS_READ_INTERRUPTED = 0x0200  # strip pulled too soon
SS_GENERAL_FAULT = 0x0400
SS_TIME_FAULT = 0x0800  # time may be inaccurate
SS_RESERVED = 0xF000
# Annunciations that make the result untrustworthy (flagged sensor_malfunction).
_SS_MALFUNCTION = (
    SS_SENSOR_MALFUNCTION
    | SS_SAMPLE_SIZE_INSUFFICIENT
    | SS_STRIP_INSERTION_ERROR
    | SS_STRIP_TYPE_INCORRECT
    | SS_TEMPERATURE_TOO_HIGH
    | SS_TEMPERATURE_TOO_LOW
    | SS_READ_INTERRUPTED
    | SS_GENERAL_FAULT
)

# kg/L -> mg/dL: 1 kg/L = 10^6 mg / 10 dL = 100,000 mg/dL. mol/L -> mmol/L: x 1000.
_MG_DL_PER_KG_L = 100_000
_MMOL_PER_MOL = 1000


def _layout(flags: int) -> struct.Struct:
    fmt = "<BHHBBBBB"  # flags, sequence number, base time
    if flags & F_TIME_OFFSET:
        fmt += "h"
    if flags & F_CONCENTRATION:
        fmt += "HB"
    if flags & F_STATUS:
        fmt += "H"
    return struct.Struct(fmt)


_LAYOUTS: tuple[struct.Struct, ...] = tuple(_layout(f) for f in range(0x20))


def _fail(reason: str, data: bytes, name: str) -> DecodeError:
    return DecodeError(reason, data, characteristic=name)


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    sequence: int
    base_time: DateTime
    time_offset_min: int | None = None
    # In the SI unit the flags say: kg/L, or mol/L when mol_per_l.
    concentration: Num | None = None
    mol_per_l: bool = False
    sample_type: int | None = None
    sample_location: int | None = None
    sensor_status: int | None = None
    context_follows: bool = False

    characteristic: ClassVar[str] = Uuid.GLUCOSE_MEASUREMENT
    name: ClassVar[str] = "Glucose Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> GlucoseMeasurement:
        flags, f = unpack_flagged(data, F_RESERVED, _LAYOUTS, cls.name)
        base = DateTime.checked(data, f[2], f[3], f[4], f[5], f[6], f[7])
        i = 8
        offset = None
        if flags & F_TIME_OFFSET:
            offset = f[i]
            i += 1
        conc = stype = loc = None
        if flags & F_CONCENTRATION:
            conc = SFLOAT_TABLE[f[i]]
            stype, loc = f[i + 1] & 0x0F, f[i + 1] >> 4
            if not 1 <= stype <= 10:
                raise _fail(f"reserved sample type {stype}", data, cls.name)
            if loc not in _VALID_LOCATIONS:
                raise _fail(f"reserved sample location {loc}", data, cls.name)
            i += 2
        status = None
        if flags & F_STATUS:
            status = f[i]
            if status & SS_RESERVED:
                raise _fail(f"reserved sensor status bits set (0x{status:04x})", data, cls.name)
        return cls(
            f[1], base, offset, conc, bool(flags & F_MOL_PER_L), stype, loc, status, bool(flags & F_CONTEXT_FOLLOWS)
        )

    @property
    def flags(self) -> int:
        flags = F_MOL_PER_L if self.mol_per_l else 0
        if self.time_offset_min is not None:
            flags |= F_TIME_OFFSET
        if self.concentration is not None:
            flags |= F_CONCENTRATION
        if self.sensor_status is not None:
            flags |= F_STATUS
        if self.context_follows:
            flags |= F_CONTEXT_FOLLOWS
        return flags

    def __bytes__(self) -> bytes:
        flags = self.flags
        args: list[int] = [flags, self.sequence, *self.base_time.fields()]
        if self.time_offset_min is not None:
            args.append(self.time_offset_min)
        if self.concentration is not None:
            stype = self.sample_type if self.sample_type is not None else TYPE_CAPILLARY_WHOLE_BLOOD
            loc = self.sample_location if self.sample_location is not None else LOCATION_FINGER
            args += [encode_sfloat(self.concentration), (loc << 4) | stype]
        if self.sensor_status is not None:
            args.append(self.sensor_status)
        return _LAYOUTS[flags].pack(*args)

    @property
    def is_control_solution(self) -> bool:
        return self.sample_type == TYPE_CONTROL_SOLUTION or self.sample_location == LOCATION_CONTROL_SOLUTION

    def glucose_value(self) -> Measured | None:
        """The concentration in mmol/L (original kept in mg/dL or mmol/L as the meter
        displays it); censored when the meter says LOW/HIGH; None if not sent."""
        if self.concentration is None:
            return None
        status = self.sensor_status or 0
        censored: Censored | None = (
            "low" if status & SS_RESULT_TOO_LOW else "high" if status & SS_RESULT_TOO_HIGH else None
        )
        conc = self.concentration
        if isinstance(conc, Special):
            return measured(conc, "mmol/L", censored=censored)
        if self.mol_per_l:
            return measured(round(conc * _MMOL_PER_MOL, 9), "mmol/L", censored=censored)
        return measured(round(conc * _MG_DL_PER_KG_L, 9), "mg/dL", censored=censored)

    def status_flags(self) -> set[str]:
        s = self.sensor_status or 0
        out: set[str] = set()
        if s & SS_BATTERY_LOW:
            out.add("low_battery")
        if s & _SS_MALFUNCTION:
            out.add("sensor_malfunction")
        if s & SS_RESULT_TOO_LOW:
            out.add("sensor_low")
        if s & SS_RESULT_TOO_HIGH:
            out.add("sensor_high")
        return out

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        if self.is_control_solution:
            # A control-solution test checks the meter, not the patient: never a reading.
            return []
        value = self.glucose_value()
        kind, component = Kind.GLUCOSE_CAPILLARY, "glucose"
        if self.sample_type == TYPE_ISF:
            kind, component = Kind.GLUCOSE_CGM, "glucose_interstitial"
        values: dict[str, Measured] = {}
        if value is not None:
            values[component] = value
        else:  # a stored record without a result (e.g. an error record) is still reported
            values[component] = Measured(None, Unit.MMOL_L, special=Special.NAN)
        when = self.base_time.to_datetime(ctx.device_tz)
        if when is not None and self.time_offset_min:
            when += timedelta(minutes=self.time_offset_min)
        unset = self.base_time.clock_unset or bool((self.sensor_status or 0) & SS_TIME_FAULT)
        extras: dict[str, object] = {"context_follows": self.context_follows}
        if self.sample_type is not None:
            extras["sample_type"] = self.sample_type
            extras["sample_location"] = self.sample_location
        return [
            Observation(
                kind,
                values,
                frozenset(self.status_flags()),
                when,
                unset,
                self.sequence,
                raw,
                self.characteristic,
                ctx.received_at,
                ctx.device,
                extras,
            )
        ]


# --- Glucose Measurement Context -----------------------------------------------------
C_CARBOHYDRATE = 0x01
C_MEAL = 0x02
C_TESTER_HEALTH = 0x04
C_EXERCISE = 0x08
C_MEDICATION = 0x10
C_MEDICATION_LITRES = 0x20
C_HBA1C = 0x40
C_EXTENDED = 0x80

MEAL_PREPRANDIAL = 1
MEAL_POSTPRANDIAL = 2
MEAL_FASTING = 3
MEAL_CASUAL = 4  # snacks, drinks
MEAL_BEDTIME = 5
MEAL_FLAGS = {
    MEAL_PREPRANDIAL: "meal_preprandial",
    MEAL_POSTPRANDIAL: "meal_postprandial",
    MEAL_FASTING: "meal_fasting",
    MEAL_CASUAL: "meal_casual",
    MEAL_BEDTIME: "meal_bedtime",
}
# Carbohydrate ID 1-7: breakfast, lunch, dinner, snack, drink, supper, brunch.
_CARB_IDS = range(1, 8)
# Tester 1 self, 2 health care professional, 3 lab test, 15 not available.
_TESTERS = frozenset({1, 2, 3, 15})
# Health 1 minor issues, 2 major, 3 during menses, 4 under stress, 5 none, 15 n/a.
_HEALTH = frozenset({1, 2, 3, 4, 5, 15})
# Medication ID 1-5: rapid, short, intermediate, long acting insulin, pre-mixed.
_MEDICATION_IDS = range(1, 6)

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    sequence: int
    extended_flags: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_kg: Num | None = None
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: int | None = None
    medication: Num | None = None  # kg, or litres when medication_in_litres
    medication_in_litres: bool = False
    hba1c_pct: Num | None = None

    characteristic: ClassVar[str] = Uuid.GLUCOSE_MEASUREMENT_CONTEXT
    name: ClassVar[str] = "Glucose Measurement Context"

    @classmethod
    def from_bytes(cls, data: bytes) -> GlucoseMeasurementContext:
        n = cls.name
        if not data:
            raise _fail("empty value", data, n)
        flags = data[0]
        size = 3
        size += 1 if flags & C_EXTENDED else 0
        size += 3 if flags & C_CARBOHYDRATE else 0
        size += 1 if flags & C_MEAL else 0
        size += 1 if flags & C_TESTER_HEALTH else 0
        size += 3 if flags & C_EXERCISE else 0
        size += 3 if flags & C_MEDICATION else 0
        size += 2 if flags & C_HBA1C else 0
        if len(data) != size:
            what = "truncated" if len(data) < size else "trailing bytes"
            raise _fail(f"{what}: flags 0x{flags:02x} announce {size} bytes, got {len(data)}", data, n)
        seq = data[1] | data[2] << 8
        i = 3
        ext = carb_id = carb = meal = tester = health = dur = intensity = med_id = med = hba1c = None
        if flags & C_EXTENDED:
            ext = data[i]
            if ext:  # every extended flag bit is reserved
                raise _fail(f"reserved extended flag bits set (0x{ext:02x})", data, n)
            i += 1
        if flags & C_CARBOHYDRATE:
            carb_id, carb = data[i], SFLOAT_TABLE[data[i + 1] | data[i + 2] << 8]
            if carb_id not in _CARB_IDS:
                raise _fail(f"reserved carbohydrate id {carb_id}", data, n)
            i += 3
        if flags & C_MEAL:
            meal = data[i]
            if meal not in MEAL_FLAGS:
                raise _fail(f"reserved meal value {meal}", data, n)
            i += 1
        if flags & C_TESTER_HEALTH:
            tester, health = data[i] & 0x0F, data[i] >> 4
            if tester not in _TESTERS or health not in _HEALTH:
                raise _fail(f"reserved tester/health value 0x{data[i]:02x}", data, n)
            i += 1
        if flags & C_EXERCISE:
            dur, intensity = data[i] | data[i + 1] << 8, data[i + 2]
            if intensity > 100:
                raise _fail(f"exercise intensity {intensity} % above 100", data, n)
            i += 3
        if flags & C_MEDICATION:
            med_id, med = data[i], SFLOAT_TABLE[data[i + 1] | data[i + 2] << 8]
            if med_id not in _MEDICATION_IDS:
                raise _fail(f"reserved medication id {med_id}", data, n)
            i += 3
        if flags & C_HBA1C:
            hba1c = SFLOAT_TABLE[data[i] | data[i + 1] << 8]
        return cls(
            seq, ext, carb_id, carb, meal, tester, health, dur, intensity, med_id, med,
            bool(flags & C_MEDICATION_LITRES), hba1c,
        )  # fmt: skip

    @property
    def flags(self) -> int:
        flags = C_MEDICATION_LITRES if self.medication_in_litres else 0
        if self.extended_flags is not None:
            flags |= C_EXTENDED
        if self.carbohydrate_id is not None:
            flags |= C_CARBOHYDRATE
        if self.meal is not None:
            flags |= C_MEAL
        if self.tester is not None:
            flags |= C_TESTER_HEALTH
        if self.exercise_duration_s is not None:
            flags |= C_EXERCISE
        if self.medication_id is not None:
            flags |= C_MEDICATION
        if self.hba1c_pct is not None:
            flags |= C_HBA1C
        return flags

    def __bytes__(self) -> bytes:
        out = bytearray([self.flags])
        out += _U16.pack(self.sequence)
        if self.extended_flags is not None:
            out += _U8.pack(self.extended_flags)
        if self.carbohydrate_id is not None:
            out += _U8.pack(self.carbohydrate_id) + _U16.pack(encode_sfloat(_num(self.carbohydrate_kg)))
        if self.meal is not None:
            out += _U8.pack(self.meal)
        if self.tester is not None:
            out += _U8.pack(((self.health or 15) << 4) | self.tester)
        if self.exercise_duration_s is not None:
            out += _U16.pack(self.exercise_duration_s) + _U8.pack(self.exercise_intensity_pct or 0)
        if self.medication_id is not None:
            out += _U8.pack(self.medication_id) + _U16.pack(encode_sfloat(_num(self.medication)))
        if self.hba1c_pct is not None:
            out += _U16.pack(encode_sfloat(self.hba1c_pct))
        return bytes(out)

    def meal_flags(self) -> set[str]:
        return {MEAL_FLAGS[self.meal]} if self.meal in MEAL_FLAGS else set()

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        # The context annotates the measurement with the same sequence number; merging
        # the two needs both, which DeviceSession does. On its own it is no reading.
        return []


def _num(value: Num | None) -> Num:
    return Special.NAN if value is None else value


def with_context(obs: Observation, context: GlucoseMeasurementContext) -> Observation:
    """The glucose observation annotated with its context (meal flags, extras)."""
    if obs.sequence != context.sequence:
        raise ValueError(f"context {context.sequence} does not belong to measurement {obs.sequence}")
    extras = dict(obs.extras)
    extras["context"] = context
    return Observation(
        obs.kind,
        obs.values,
        obs.flags | context.meal_flags(),
        obs.device_time,
        obs.clock_unset,
        obs.sequence,
        obs.raw,
        obs.characteristic,
        obs.received_at,
        obs.device,
        extras,
    )
