"""PLX Spot-Check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Pulse Oximeter Service 1.0 (GSS "PLX Spot-Check Measurement" / "PLX Continuous
Measurement").

Spot-check:

    Flags                      uint8  bit0 timestamp present; bit1 measurement status
                                      present; bit2 device and sensor status present;
                                      bit3 pulse amplitude index present; bit4 device
                                      clock is not set; bits5-7 reserved
    SpO2PR-Spot-Check          SpO2 SFLOAT %, PR SFLOAT beats per minute
    Timestamp                  Date Time (7)   if bit0
    Measurement Status         uint16          if bit1
    Device and Sensor Status   uint24          if bit2
    Pulse Amplitude Index      SFLOAT %        if bit3

Continuous:

    Flags                      uint8  bit0 SpO2PR-Fast present; bit1 SpO2PR-Slow present;
                                      bit2 measurement status; bit3 device and sensor
                                      status; bit4 pulse amplitude index; bits5-7 reserved
    SpO2PR-Normal              SpO2 SFLOAT, PR SFLOAT
    SpO2PR-Fast                2 x SFLOAT   if bit0
    SpO2PR-Slow                2 x SFLOAT   if bit1
    Measurement Status         uint16       if bit2
    Device and Sensor Status   uint24       if bit3
    Pulse Amplitude Index      SFLOAT       if bit4

Measurement Status bits: 0-4 reserved, 5 measurement ongoing, 6 early estimated data,
7 validated data, 8 fully qualified data, 9 data from measurement storage, 10 data for
demonstration, 11 data for testing, 12 calibration ongoing, 13 measurement unavailable,
14 questionable measurement detected, 15 invalid measurement detected.
Device and Sensor Status bits: 0 extended display update ongoing, 1 equipment
malfunction, 2 signal processing irregularity, 3 inadequate signal, 4 poor signal, 5 low
perfusion, 6 erratic signal, 7 nonpulsatile signal, 8 questionable pulse, 9 signal
analysis ongoing, 10 sensor interference, 11 sensor unconnected to user, 12 unknown
sensor connected, 13 sensor displaced, 14 sensor malfunctioning, 15 sensor
disconnected, 16-23 reserved.
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

SC_TIMESTAMP = 0x01
SC_MEASUREMENT_STATUS = 0x02
SC_DEVICE_STATUS = 0x04
SC_PAI = 0x08
SC_CLOCK_NOT_SET = 0x10
SC_RESERVED = 0xE0

CM_FAST = 0x01
CM_SLOW = 0x02
CM_MEASUREMENT_STATUS = 0x04
CM_DEVICE_STATUS = 0x08
CM_PAI = 0x10
CM_RESERVED = 0xE0

MS_RESERVED = 0x001F
MS_ONGOING = 0x0020
MS_EARLY_ESTIMATE = 0x0040
MS_VALIDATED = 0x0080
MS_FULLY_QUALIFIED = 0x0100
MS_FROM_STORAGE = 0x0200
MS_DEMONSTRATION = 0x0400
MS_TESTING = 0x0800
MS_CALIBRATION_ONGOING = 0x1000
MS_UNAVAILABLE = 0x2000
MS_QUESTIONABLE = 0x4000
MS_INVALID = 0x8000

DS_EQUIPMENT_MALFUNCTION = 0x000002
DS_LOW_PERFUSION = 0x000020
DS_SENSOR_MALFUNCTIONING = 0x004000
DS_RESERVED = 0xFF0000
# Signal-quality problems: the value may be off (flagged measurement_unstable).
_DS_UNSTABLE = 0x000004 | 0x000008 | 0x000010 | 0x000040 | 0x000080 | 0x000100 | 0x000400
# The sensor is not (properly) on the patient or broken (flagged sensor_malfunction).
_DS_MALFUNCTION = DS_EQUIPMENT_MALFUNCTION | DS_SENSOR_MALFUNCTIONING | 0x000800 | 0x001000 | 0x002000 | 0x008000
_MS_UNSTABLE = MS_ONGOING | MS_EARLY_ESTIMATE | MS_CALIBRATION_ONGOING | MS_QUESTIONABLE


def _status_flags(meas: int | None, dev: int | None) -> set[str]:
    out: set[str] = set()
    m, d = meas or 0, dev or 0
    if m & _MS_UNSTABLE or d & _DS_UNSTABLE:
        out.add("measurement_unstable")
    if m & MS_INVALID or d & _DS_MALFUNCTION:
        out.add("sensor_malfunction")
    if m & MS_FROM_STORAGE:
        out.add("from_stored_records")
    if d & DS_LOW_PERFUSION:
        out.add("low_perfusion")
    return out


def _check_status(data: bytes, name: str, meas: int | None, dev: int | None) -> None:
    if meas is not None and meas & MS_RESERVED:
        raise DecodeError(f"reserved measurement status bits (0x{meas:04x})", data, characteristic=name)
    if dev is not None and dev & DS_RESERVED:
        raise DecodeError(f"reserved device and sensor status bits (0x{dev:06x})", data, characteristic=name)


def _is_demo(meas: int | None) -> bool:
    # Demonstration or test data is not the patient's: never stored as a reading.
    return bool((meas or 0) & (MS_DEMONSTRATION | MS_TESTING))


def _values(spo2: Num, pr: Num) -> dict[str, Measured]:
    return {"spo2": measured(spo2, "%"), "pulse": measured(pr, "/min")}


def _sc_layout(flags: int) -> struct.Struct:
    fmt = "<BHH"
    if flags & SC_TIMESTAMP:
        fmt += "HBBBBB"
    if flags & SC_MEASUREMENT_STATUS:
        fmt += "H"
    if flags & SC_DEVICE_STATUS:
        fmt += "HB"  # uint24 as low 16 bits + high 8 bits
    if flags & SC_PAI:
        fmt += "H"
    return struct.Struct(fmt)


_SC_LAYOUTS = tuple(_sc_layout(f) for f in range(0x20))


def _length_error(data: bytes, flags: int, size: int, name: str) -> DecodeError:
    what = "truncated" if len(data) < size else "trailing bytes"
    return DecodeError(f"{what}: flags 0x{flags:02x} announce {size} bytes, got {len(data)}", data, characteristic=name)


@dataclass(frozen=True, slots=True)
class PlxSpotCheck:
    spo2_pct: Num
    pulse_rate: Num
    timestamp: DateTime | None = None
    measurement_status: int | None = None
    device_status: int | None = None
    pulse_amplitude_index: Num | None = None
    clock_not_set: bool = False

    characteristic: ClassVar[str] = Uuid.PLX_SPOT_CHECK_MEASUREMENT
    name: ClassVar[str] = "PLX Spot-Check Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> PlxSpotCheck:
        flags, f = unpack_flagged(data, SC_RESERVED, _SC_LAYOUTS, cls.name)
        i = 3
        ts = meas = dev = pai = None
        if flags & SC_TIMESTAMP:
            ts = DateTime.checked(data, *f[3:9])
            i = 9
        if flags & SC_MEASUREMENT_STATUS:
            meas = f[i]
            i += 1
        if flags & SC_DEVICE_STATUS:
            dev = f[i] | f[i + 1] << 16
            i += 2
        if flags & SC_PAI:
            pai = SFLOAT_TABLE[f[i]]
        _check_status(data, cls.name, meas, dev)
        return cls(SFLOAT_TABLE[f[1]], SFLOAT_TABLE[f[2]], ts, meas, dev, pai, bool(flags & SC_CLOCK_NOT_SET))

    def __bytes__(self) -> bytes:
        flags = SC_CLOCK_NOT_SET if self.clock_not_set else 0
        args = [0, encode_sfloat(self.spo2_pct), encode_sfloat(self.pulse_rate)]
        if self.timestamp is not None:
            flags |= SC_TIMESTAMP
            args += self.timestamp.fields()
        if self.measurement_status is not None:
            flags |= SC_MEASUREMENT_STATUS
            args.append(self.measurement_status)
        if self.device_status is not None:
            flags |= SC_DEVICE_STATUS
            args += [self.device_status & 0xFFFF, self.device_status >> 16]
        if self.pulse_amplitude_index is not None:
            flags |= SC_PAI
            args.append(encode_sfloat(self.pulse_amplitude_index))
        args[0] = flags
        return _SC_LAYOUTS[flags].pack(*args)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        if _is_demo(self.measurement_status):
            return []
        when, unset = device_time(self.timestamp, ctx)
        extras: dict[str, object] = {}
        if self.pulse_amplitude_index is not None:
            extras["pulse_amplitude_index"] = self.pulse_amplitude_index
        return [
            Observation(
                Kind.SPO2,
                _values(self.spo2_pct, self.pulse_rate),
                frozenset(_status_flags(self.measurement_status, self.device_status)),
                when,
                unset or self.clock_not_set,
                None,
                raw,
                self.characteristic,
                ctx.received_at,
                ctx.device,
                extras,
            )
        ]


def _cm_layout(flags: int) -> struct.Struct:
    fmt = "<BHH"
    if flags & CM_FAST:
        fmt += "HH"
    if flags & CM_SLOW:
        fmt += "HH"
    if flags & CM_MEASUREMENT_STATUS:
        fmt += "H"
    if flags & CM_DEVICE_STATUS:
        fmt += "HB"
    if flags & CM_PAI:
        fmt += "H"
    return struct.Struct(fmt)


_CM_LAYOUTS = tuple(_cm_layout(f) for f in range(0x20))


@dataclass(frozen=True, slots=True)
class PlxContinuous:
    spo2_pct: Num
    pulse_rate: Num
    fast: tuple[Num, Num] | None = None  # (SpO2, PR)
    slow: tuple[Num, Num] | None = None
    measurement_status: int | None = None
    device_status: int | None = None
    pulse_amplitude_index: Num | None = None

    characteristic: ClassVar[str] = Uuid.PLX_CONTINUOUS_MEASUREMENT
    name: ClassVar[str] = "PLX Continuous Measurement"

    @classmethod
    def from_bytes(cls, data: bytes) -> PlxContinuous:
        flags, f = unpack_flagged(data, CM_RESERVED, _CM_LAYOUTS, cls.name)
        t = SFLOAT_TABLE
        i = 3
        fast = slow = meas = dev = pai = None
        if flags & CM_FAST:
            fast = (t[f[i]], t[f[i + 1]])
            i += 2
        if flags & CM_SLOW:
            slow = (t[f[i]], t[f[i + 1]])
            i += 2
        if flags & CM_MEASUREMENT_STATUS:
            meas = f[i]
            i += 1
        if flags & CM_DEVICE_STATUS:
            dev = f[i] | f[i + 1] << 16
            i += 2
        if flags & CM_PAI:
            pai = t[f[i]]
        _check_status(data, cls.name, meas, dev)
        return cls(t[f[1]], t[f[2]], fast, slow, meas, dev, pai)

    def __bytes__(self) -> bytes:
        flags = 0
        args = [0, encode_sfloat(self.spo2_pct), encode_sfloat(self.pulse_rate)]
        if self.fast is not None:
            flags |= CM_FAST
            args += [encode_sfloat(self.fast[0]), encode_sfloat(self.fast[1])]
        if self.slow is not None:
            flags |= CM_SLOW
            args += [encode_sfloat(self.slow[0]), encode_sfloat(self.slow[1])]
        if self.measurement_status is not None:
            flags |= CM_MEASUREMENT_STATUS
            args.append(self.measurement_status)
        if self.device_status is not None:
            flags |= CM_DEVICE_STATUS
            args += [self.device_status & 0xFFFF, self.device_status >> 16]
        if self.pulse_amplitude_index is not None:
            flags |= CM_PAI
            args.append(encode_sfloat(self.pulse_amplitude_index))
        args[0] = flags
        return _CM_LAYOUTS[flags].pack(*args)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        if _is_demo(self.measurement_status):
            return []
        # Continuous values carry no timestamp: they are "now" (the gateway's clock).
        return [
            Observation(
                Kind.SPO2,
                _values(self.spo2_pct, self.pulse_rate),
                frozenset(_status_flags(self.measurement_status, self.device_status)),
                None,
                False,
                None,
                raw,
                self.characteristic,
                ctx.received_at,
                ctx.device,
                {},
            )
        ]
