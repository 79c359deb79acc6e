"""CGM Measurement 0x2AA7 and CGM Session Start Time 0x2AAA (CGMS 1.0.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmRecord, CgmSessionStartTime, e2e_crc
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.observation import to_reading
from device_profiles.sig import CGM
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

# 06 size | 00 flags | 7800 glucose 120 mg/dL | 0500 time offset 5 min
CGM_MINIMAL = bytes.fromhex("060078000500")

# flags 0xE3: trend (bit0), quality (bit1), warning (bit5), cal/temp (bit6), status (bit7).
# 0d size 13 | e3 | 7800 120 mg/dL | 0500 offset 5
# | 02 status octet: device battery low | 04 cal/temp octet: calibration recommended
# | 00 warning octet | f1ff trend = exp 0xF (-1), mantissa 0xFF1 (-15) = -1.5 (mg/dL)/min
# | 5f00 quality 95 %
CGM_FULL = bytes.fromhex("0de378000500020400f1ff5f00")

# The same record with its E2E-CRC: size 15, CRC-16/MCRF4XX of the first 13 bytes = 0x1AF2.
CGM_CRC = bytes.fromhex("0fe378000500020400f1ff5f00f21a")

# 07 | 20 warning octet only | 2800 40 mg/dL | 0a00 offset 10 | 40 result lower than the
# device can process ("LO")
CGM_LOW = bytes.fromhex("072028000a0040")

# Session start 2026-03-15 07:00:00 local, time zone +4 x 15 min = UTC+1, DST 0 (standard).
SESSION_START = bytes.fromhex("ea07030f0700000400")


def test_crc_is_crc16_mcrf4xx() -> None:
    assert e2e_crc(b"123456789") == 0x6F91  # the catalogue check value
    assert e2e_crc(CGM_CRC[:13]) == 0x1AF2


def test_minimal_record() -> None:
    (r,) = CgmMeasurement.from_bytes(CGM_MINIMAL).records
    assert r == CgmRecord(120.0, 5)
    assert bytes(r) == CGM_MINIMAL


def test_full_record() -> None:
    (r,) = CgmMeasurement.from_bytes(CGM_FULL).records
    assert (r.status, r.cal_temp, r.warning) == (0x02, 0x04, 0x00)
    assert r.trend_mg_dl_min == -1.5
    assert r.quality_pct == 95.0
    assert not r.with_crc
    assert bytes(r) == CGM_FULL
    assert r.annunciation_flags() == {"low_battery", "calibration_recommended"}


def test_record_with_crc() -> None:
    (r,) = CgmMeasurement.from_bytes(CGM_CRC).records
    assert r.with_crc
    assert bytes(r) == CGM_CRC


def test_bad_crc_is_rejected() -> None:
    bad = CGM_CRC[:-1] + b"\x00"
    with pytest.raises(DecodeError, match="CRC"):
        CgmMeasurement.from_bytes(bad)


@pytest.mark.parametrize(
    ("flags", "octets"),
    [(0x80, "01"), (0x40, "02"), (0x20, "04"), (0xC0, "0102"), (0x60, "0204"), (0xA0, "0104")],
)
def test_annunciation_octets_in_order(flags: int, octets: str) -> None:
    body = bytes([6 + len(octets) // 2, flags]) + bytes.fromhex("78000500" + octets)
    (r,) = CgmMeasurement.from_bytes(body).records
    present = [o for o in (r.status, r.cal_temp, r.warning) if o is not None]
    assert bytes(present).hex() == octets
    assert bytes(r) == body


def test_several_records_in_one_notification() -> None:
    m = CgmMeasurement.from_bytes(CGM_MINIMAL + CGM_FULL + CGM_CRC)
    assert len(m.records) == 3
    assert bytes(m) == CGM_MINIMAL + CGM_FULL + CGM_CRC


def test_session_start_time() -> None:
    s = CgmSessionStartTime.from_bytes(SESSION_START)
    assert s.start == DateTime(2026, 3, 15, 7, 0, 0)
    assert (s.time_zone_15min, s.dst_code) == (4, 0)
    assert s.to_datetime() == datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
    assert bytes(s) == SESSION_START
    with_crc = CgmSessionStartTime(s.start, 4, 0, with_crc=True)
    assert CgmSessionStartTime.from_bytes(bytes(with_crc)) == with_crc
    assert bytes(with_crc)[-2:] == e2e_crc(SESSION_START).to_bytes(2, "little")


def test_session_start_dst() -> None:
    # 2026-07-01 10:00 local, UTC+1 standard (4) + DST +1 h (code 4) -> 08:00 UTC
    s = CgmSessionStartTime.from_bytes(bytes.fromhex("ea0707010a00000404"))
    assert s.to_datetime() == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def test_observations_need_the_session_start(device: DeviceInfo) -> None:
    start = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
    (obs,) = CGM.decode(Uuid.CGM_MEASUREMENT, CGM_FULL, received_at=RECEIVED_AT, device=device, session_start=start)
    assert obs.device_time == start + timedelta(minutes=5)
    assert obs.values["glucose_interstitial"].value == pytest.approx(120 / 18.016)
    assert obs.extras["trend_mg_dl_min"] == -1.5
    reading = to_reading(obs)
    assert reading.measured_at == start + timedelta(minutes=5)
    (no_start,) = CGM.decode(Uuid.CGM_MEASUREMENT, CGM_FULL, received_at=RECEIVED_AT, device=device)
    assert no_start.device_time is None


def test_sensor_low_is_censored(device: DeviceInfo) -> None:
    (obs,) = CGM.decode(Uuid.CGM_MEASUREMENT, CGM_LOW, received_at=RECEIVED_AT, device=device)
    g = obs.values["glucose_interstitial"]
    assert (g.value, g.censored, g.original_value) == (None, "low", 40.0)
    assert "sensor_low" in obs.flags
    assert to_reading(obs).values["glucose_interstitial"].censored == "low"


def test_time_sync_required_marks_clock_unset() -> None:
    data = bytes.fromhex("07407800050001")  # cal/temp bit0: time sync required
    (obs,) = CGM.decode(Uuid.CGM_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert obs.clock_unset


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (CGM_MINIMAL[:-1], "truncated"),
        (bytes.fromhex("070078000500"), "size"),  # size says 7, flags say 6
        (bytes.fromhex("060478000500"), "reserved flag"),  # bit2 reserved
        (bytes.fromhex("07807800050040"), "reserved status"),  # status bit6
        (bytes.fromhex("07407800050080"), "reserved cal/temp"),
        (CGM_MINIMAL + b"\x06", "truncated"),  # a second record cut short
        (bytes.fromhex("0de378000500"), "truncated"),  # size beyond the data
    ],
)
def test_malformed_records(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        CgmMeasurement.from_bytes(data)
    assert reason in err.value.reason
    assert err.value.raw == data


@pytest.mark.parametrize(
    "data",
    [
        SESSION_START[:-1],
        bytes.fromhex("ea07030f0700003a00"),  # time zone +58 out of range
        bytes.fromhex("ea07030f0700000403"),  # DST code 3 reserved
        bytes.fromhex("ea070d0f0700000400"),  # month 13
        SESSION_START + b"\x00\x00",  # CRC present but wrong
    ],
)
def test_malformed_session_start(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CgmSessionStartTime.from_bytes(data)


def test_each_record_keeps_its_own_bytes() -> None:
    observations = CGM.decode(Uuid.CGM_MEASUREMENT, CGM_MINIMAL + CGM_CRC, received_at=RECEIVED_AT)
    assert [o.raw for o in observations] == [CGM_MINIMAL, CGM_CRC]


# CGM Feature: 00 90 01 = bits 12 (E2E-CRC), 15 (trend), 16 (quality) | 59 = location 5
# subcutaneous tissue (high nibble), type 9 interstitial fluid (low nibble) | CRC of the
# first four bytes, little-endian.
FEATURE_BODY = bytes.fromhex("00900159")


def test_cgm_feature_with_crc() -> None:
    data = FEATURE_BODY + e2e_crc(FEATURE_BODY).to_bytes(2, "little")
    f = CgmFeature.from_bytes(data)
    assert f.e2e_crc_supported
    assert (f.sample_type, f.sample_location) == (9, 5)
    assert bytes(f) == data


def test_cgm_feature_without_crc_sends_ffff() -> None:
    data = bytes.fromhex("00800159ffff")  # trend + quality, no E2E-CRC
    f = CgmFeature.from_bytes(data)
    assert not f.e2e_crc_supported
    assert bytes(f) == data


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("008001590000"),  # CRC not supported but not 0xFFFF
        bytes.fromhex("00900159ffff"),  # CRC supported but wrong
        bytes.fromhex("00000259ffff"),  # reserved feature bit 17
        bytes.fromhex("00800150ffff"),  # type 0 reserved
        bytes.fromhex("00800159ff"),  # truncated
    ],
)
def test_malformed_cgm_feature(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CgmFeature.from_bytes(data)
