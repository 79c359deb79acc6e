"""CGM Measurement (0x2AA7) and CGM Session Start Time (0x2AAA).

CGM Measurement (Continuous Glucose Monitoring Service 1.0.2 §3.1; GSS "CGM
Measurement"). One notification holds one or more records, each:

    Size                        uint8   bytes in this record, Size field and CRC included
    Flags                       uint8   bit0 trend present; bit1 quality present;
                                        bits2-4 reserved; bit5 warning-octet present;
                                        bit6 cal/temp-octet present; bit7 status-octet present
    CGM Glucose Concentration   SFLOAT  mg/dL
    Time Offset                 uint16  minutes since the session start
    Sensor Status Annunciation  0-3 octets, in the order status, cal/temp, warning
                                (bits 0-7, 8-15, 16-23 of the 24-bit annunciation)
    CGM Trend Information       SFLOAT  (mg/dL)/min      if bit0
    CGM Quality                 SFLOAT  %                if bit1
    E2E-CRC                     uint16                   if the sensor supports E2E-CRC

Whether the E2E-CRC is present is a feature of the sensor (CGM Feature bit 12), but the
Size field tells us too: Size is 2 more than the flags announce exactly when it is there.
The CRC is the CGMS "CRC-CCITT": generator x^16 + x^12 + x^5 + 1, seed 0xFFFF, bytes fed
LSB first (the reflected form, known as CRC-16/MCRF4XX; check value of "123456789" is
0x6F91), over every byte of the record before the CRC, sent little-endian.

CGM Session Start Time (CGMS §3.5): Date Time (7), Time Zone sint8 (15-minute steps,
-48..+56, -128 = unknown), DST Offset uint8 (0 standard, 2 +0.5 h, 4 +1 h, 8 +2 h,
255 unknown), E2E-CRC uint16 when supported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar

from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import SFLOAT_TABLE, Num, encode_sfloat
from device_profiles.observation import Censored, DecodeContext, Measured, Observation, measured
from device_profiles.vocabulary import Kind

F_TREND = 0x01
F_QUALITY = 0x02
F_RESERVED = 0x1C
F_WARNING = 0x20
F_CAL_TEMP = 0x40
F_STATUS = 0x80

# Status octet (annunciation bits 0-7); bits 6-7 reserved.
ST_SESSION_STOPPED = 0x01
ST_BATTERY_LOW = 0x02
ST_SENSOR_TYPE_INCORRECT = 0x04
ST_SENSOR_MALFUNCTION = 0x08
ST_DEVICE_SPECIFIC_ALERT = 0x10
ST_GENERAL_FAULT = 0x20
ST_RESERVED = 0xC0
# Cal/Temp octet (bits 8-15); bit 7 of the octet reserved.
CT_TIME_SYNC_REQUIRED = 0x01
CT_CALIBRATION_NOT_ALLOWED = 0x02
CT_CALIBRATION_RECOMMENDED = 0x04
CT_CALIBRATION_REQUIRED = 0x08
CT_TEMPERATURE_TOO_HIGH = 0x10
CT_TEMPERATURE_TOO_LOW = 0x20
CT_CALIBRATION_PENDING = 0x40
CT_RESERVED = 0x80
# Warning octet (bits 16-23).
W_BELOW_PATIENT_LOW = 0x01
W_ABOVE_PATIENT_HIGH = 0x02
W_BELOW_HYPO = 0x04
W_ABOVE_HYPER = 0x08
W_RATE_DECREASE_EXCEEDED = 0x10
W_RATE_INCREASE_EXCEEDED = 0x20
W_RESULT_TOO_LOW = 0x40  # lower than the device can process
W_RESULT_TOO_HIGH = 0x80  # higher than the device can process


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1  # 0x8408 = 0x1021 bit-reversed
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def e2e_crc(data: bytes) -> int:
    """The CGMS E2E-CRC (CRC-16/MCRF4XX) of ``data``."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


_NAME = "CGM Measurement"


@dataclass(frozen=True, slots=True)
class CgmRecord:
    glucose_mg_dl: Num
    time_offset_min: int
    status: int | None = None
    cal_temp: int | None = None
    warning: int | None = None
    trend_mg_dl_min: Num | None = None
    quality_pct: Num | None = None
    with_crc: bool = False

    @property
    def flags(self) -> int:
        flags = 0
        if self.trend_mg_dl_min is not None:
            flags |= F_TREND
        if self.quality_pct is not None:
            flags |= F_QUALITY
        if self.warning is not None:
            flags |= F_WARNING
        if self.cal_temp is not None:
            flags |= F_CAL_TEMP
        if self.status is not None:
            flags |= F_STATUS
        return flags

    def __bytes__(self) -> bytes:
        body = bytearray([0, self.flags])
        body += encode_sfloat(self.glucose_mg_dl).to_bytes(2, "little")
        body += self.time_offset_min.to_bytes(2, "little")
        for octet in (self.status, self.cal_temp, self.warning):
            if octet is not None:
                body.append(octet)
        if self.trend_mg_dl_min is not None:
            body += encode_sfloat(self.trend_mg_dl_min).to_bytes(2, "little")
        if self.quality_pct is not None:
            body += encode_sfloat(self.quality_pct).to_bytes(2, "little")
        body[0] = len(body) + (2 if self.with_crc else 0)
        if self.with_crc:
            body += e2e_crc(bytes(body)).to_bytes(2, "little")
        return bytes(body)

    @classmethod
    def decode_at(cls, data: bytes, start: int) -> tuple[CgmRecord, int]:
        """Decode the record at ``start``; return it and where the next one starts."""
        remaining = len(data) - start
        if remaining < 6:
            raise DecodeError(
                f"truncated: CGM record needs at least 6 bytes, {remaining} left", data, characteristic=_NAME
            )
        size, flags = data[start], data[start + 1]
        if flags & F_RESERVED:
            raise DecodeError(f"reserved flag bits set (0x{flags & F_RESERVED:x})", data, characteristic=_NAME)
        n_octets = bool(flags & F_STATUS) + bool(flags & F_CAL_TEMP) + bool(flags & F_WARNING)
        expected = 6 + n_octets + (2 if flags & F_TREND else 0) + (2 if flags & F_QUALITY else 0)
        if size == expected:
            with_crc = False
        elif size == expected + 2:
            with_crc = True
        else:
            raise DecodeError(
                f"record size {size} does not fit flags 0x{flags:02x} ({expected} bytes)", data, characteristic=_NAME
            )
        if size > remaining:
            raise DecodeError(f"truncated: record of {size} bytes, {remaining} left", data, characteristic=_NAME)
        if with_crc:
            sent = data[start + size - 2] | data[start + size - 1] << 8
            if e2e_crc(data[start : start + size - 2]) != sent:
                raise DecodeError("E2E-CRC mismatch", data, characteristic=_NAME)
        glucose = SFLOAT_TABLE[data[start + 2] | data[start + 3] << 8]
        offset = data[start + 4] | data[start + 5] << 8
        i = start + 6
        status = cal_temp = warning = None
        if flags & F_STATUS:
            status = data[i]
            i += 1
            if status & ST_RESERVED:
                raise DecodeError(f"reserved status annunciation bits (0x{status:02x})", data, characteristic=_NAME)
        if flags & F_CAL_TEMP:
            cal_temp = data[i]
            i += 1
            if cal_temp & CT_RESERVED:
                raise DecodeError(f"reserved cal/temp annunciation bits (0x{cal_temp:02x})", data, characteristic=_NAME)
        if flags & F_WARNING:
            warning = data[i]
            i += 1
        trend = quality = None
        if flags & F_TREND:
            trend = SFLOAT_TABLE[data[i] | data[i + 1] << 8]
            i += 2
        if flags & F_QUALITY:
            quality = SFLOAT_TABLE[data[i] | data[i + 1] << 8]
        return cls(glucose, offset, status, cal_temp, warning, trend, quality, with_crc), start + size

    def annunciation_flags(self) -> set[str]:
        out: set[str] = set()
        st, ct, w = self.status or 0, self.cal_temp or 0, self.warning or 0
        if st & ST_BATTERY_LOW:
            out.add("low_battery")
        if st & (ST_SENSOR_TYPE_INCORRECT | ST_SENSOR_MALFUNCTION | ST_GENERAL_FAULT) or ct & (
            CT_TEMPERATURE_TOO_HIGH | CT_TEMPERATURE_TOO_LOW
        ):
            out.add("sensor_malfunction")
        if ct & (CT_CALIBRATION_RECOMMENDED | CT_CALIBRATION_REQUIRED):
            out.add("calibration_recommended")
        if w & W_RESULT_TOO_LOW:
            out.add("sensor_low")
        if w & W_RESULT_TOO_HIGH:
            out.add("sensor_high")
        return out

    def glucose_value(self) -> Measured:
        w = self.warning or 0
        censored: Censored | None = "low" if w & W_RESULT_TOO_LOW else "high" if w & W_RESULT_TOO_HIGH else None
        return measured(self.glucose_mg_dl, "mg/dL", censored=censored)


@dataclass(frozen=True, slots=True)
class CgmMeasurement:
    """One CGM Measurement notification: one or more records."""

    records: tuple[CgmRecord, ...]
    # Where each record lies in the decoded value, so each observation keeps its own
    # original bytes (empty for a value built in code).
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    characteristic: ClassVar[str] = Uuid.CGM_MEASUREMENT
    name: ClassVar[str] = _NAME

    @classmethod
    def from_bytes(cls, data: bytes) -> CgmMeasurement:
        if not data:
            raise DecodeError("empty value", data, characteristic=_NAME)
        records = []
        spans = []
        pos = 0
        while pos < len(data):
            record, end = CgmRecord.decode_at(data, pos)
            records.append(record)
            spans.append((pos, end))
            pos = end
        return cls(tuple(records), tuple(spans))

    def __bytes__(self) -> bytes:
        return b"".join(bytes(r) for r in self.records)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        out = []
        spans = self.spans if len(self.spans) == len(self.records) else None
        for n, r in enumerate(self.records):
            when = None if ctx.session_start is None else ctx.session_start + timedelta(minutes=r.time_offset_min)
            unset = bool((r.cal_temp or 0) & CT_TIME_SYNC_REQUIRED)
            extras: dict[str, object] = {"time_offset_min": r.time_offset_min}
            if r.trend_mg_dl_min is not None:
                extras["trend_mg_dl_min"] = r.trend_mg_dl_min
            if r.quality_pct is not None:
                extras["quality_pct"] = r.quality_pct
            out.append(
                Observation(
                    Kind.GLUCOSE_CGM,
                    {"glucose_interstitial": r.glucose_value()},
                    frozenset(r.annunciation_flags()),
                    when,
                    unset,
                    # The time offset numbers the records of a session; with the session
                    # start it is the record's identity (re-reads dedupe).
                    None,
                    raw if len(self.records) == 1 else raw[spans[n][0] : spans[n][1]] if spans else bytes(r),
                    self.characteristic,
                    ctx.received_at,
                    ctx.device,
                    extras,
                )
            )
        return out


_DST_MINUTES = {0: 0, 2: 30, 4: 60, 8: 120}
TZ_UNKNOWN = -128
DST_UNKNOWN = 255
_SST = struct.Struct("<HBBBBBbB")


@dataclass(frozen=True, slots=True)
class CgmSessionStartTime:
    start: DateTime
    time_zone_15min: int = TZ_UNKNOWN
    dst_code: int = DST_UNKNOWN
    with_crc: bool = False

    characteristic: ClassVar[str] = Uuid.CGM_SESSION_START_TIME
    name: ClassVar[str] = "CGM Session Start Time"

    @classmethod
    def from_bytes(cls, data: bytes) -> CgmSessionStartTime:
        n = cls.name
        if len(data) not in (9, 11):
            raise DecodeError(f"CGM Session Start Time is 9 or 11 bytes, got {len(data)}", data, characteristic=n)
        y, mo, d, h, mi, s, tz, dst = _SST.unpack_from(data)
        try:
            start = DateTime.checked(data, y, mo, d, h, mi, s)
        except DecodeError as err:
            raise DecodeError(err.reason, data, characteristic=n) from err
        if tz != TZ_UNKNOWN and not -48 <= tz <= 56:
            raise DecodeError(f"time zone {tz} out of range", data, characteristic=n)
        if dst != DST_UNKNOWN and dst not in _DST_MINUTES:
            raise DecodeError(f"reserved DST offset {dst}", data, characteristic=n)
        with_crc = len(data) == 11
        if with_crc and e2e_crc(data[:9]) != data[9] | data[10] << 8:
            raise DecodeError("E2E-CRC mismatch", data, characteristic=n)
        return cls(start, tz, dst, with_crc)

    def __bytes__(self) -> bytes:
        body = _SST.pack(*self.start.fields(), self.time_zone_15min, self.dst_code)
        if self.with_crc:
            body += e2e_crc(body).to_bytes(2, "little")
        return body

    @classmethod
    def at(cls, when: datetime, tz: tzinfo = UTC, *, with_crc: bool = False) -> CgmSessionStartTime:
        """The value for a session that started at ``when``, expressed in zone ``tz``."""
        local = when.astimezone(tz)
        offset = local.utcoffset() or timedelta(0)
        dst = local.dst() or timedelta(0)
        zone_q = int((offset - dst).total_seconds() // 900)
        dst_code = {0: 0, 30: 2, 60: 4, 120: 8}.get(int(dst.total_seconds() // 60), DST_UNKNOWN)
        return cls(DateTime.from_datetime(local, tz), zone_q, dst_code, with_crc)

    def to_datetime(self, fallback_tz: tzinfo = UTC) -> datetime | None:
        """The session start in UTC. When the sensor does not know its zone, its wall
        clock is read in ``fallback_tz``."""
        if not self.start.is_known:
            return None
        if self.time_zone_15min == TZ_UNKNOWN:
            return self.start.to_datetime(fallback_tz)
        naive = datetime(*self.start.fields(), tzinfo=UTC)  # wall clock, shifted below
        shift = timedelta(minutes=15 * self.time_zone_15min + _DST_MINUTES.get(self.dst_code, 0))
        return naive - shift

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


# CGM Feature bits (CGMS §3.2); bits 17-23 reserved.
FEATURE_CALIBRATION = 1 << 0
FEATURE_E2E_CRC = 1 << 12
FEATURE_TREND = 1 << 15
FEATURE_QUALITY = 1 << 16
FEATURE_RESERVED = 0xFE0000
_CGM_LOCATIONS = frozenset({1, 2, 3, 4, 5, 15})  # 5 = subcutaneous tissue


@dataclass(frozen=True, slots=True)
class CgmFeature:
    """0x2AA8 CGM Feature (CGMS §3.2), 6 bytes:

    CGM Feature uint24 (bit0 calibration, 1 patient high/low alerts, 2 hypo alerts,
    3 hyper alerts, 4 rate alerts, 5 device specific alert, 6 sensor malfunction detection,
    7 temperature high/low detection, 8 result high/low detection, 9 low battery
    detection, 10 sensor type error detection, 11 general device fault, 12 E2E-CRC
    supported, 13 multiple bond, 14 multiple sessions, 15 trend information, 16 quality,
    17-23 reserved); CGM Type-Sample Location uint8 (type low nibble as in the Glucose
    Service, location high nibble: 1 finger, 2 AST, 3 earlobe, 4 control solution,
    5 subcutaneous tissue, 15 not available); E2E-CRC uint16 over the first 4 bytes, or
    0xFFFF when E2E-CRC is not supported.
    """

    features: int
    sample_type: int = 9  # interstitial fluid
    sample_location: int = 5  # subcutaneous tissue

    characteristic: ClassVar[str] = Uuid.CGM_FEATURE
    name: ClassVar[str] = "CGM Feature"

    @property
    def e2e_crc_supported(self) -> bool:
        return bool(self.features & FEATURE_E2E_CRC)

    @classmethod
    def from_bytes(cls, data: bytes) -> CgmFeature:
        n = cls.name
        if len(data) != 6:
            raise DecodeError(f"CGM Feature is 6 bytes, got {len(data)}", data, characteristic=n)
        features = data[0] | data[1] << 8 | data[2] << 16
        if features & FEATURE_RESERVED:
            raise DecodeError(f"reserved feature bits set (0x{features:06x})", data, characteristic=n)
        stype, loc = data[3] & 0x0F, data[3] >> 4
        if not 1 <= stype <= 10 or loc not in _CGM_LOCATIONS:
            raise DecodeError(f"reserved type/sample location 0x{data[3]:02x}", data, characteristic=n)
        crc = data[4] | data[5] << 8
        expected = e2e_crc(data[:4]) if features & FEATURE_E2E_CRC else 0xFFFF
        if crc != expected:
            raise DecodeError("E2E-CRC mismatch", data, characteristic=n)
        return cls(features, stype, loc)

    def __bytes__(self) -> bytes:
        body = self.features.to_bytes(3, "little") + bytes([(self.sample_location << 4) | self.sample_type])
        crc = e2e_crc(body) if self.e2e_crc_supported else 0xFFFF
        return body + crc.to_bytes(2, "little")

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []
