"""Blood Pressure Measurement 0x2A35 / Intermediate Cuff Pressure 0x2A36 (BLS 1.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import BLOOD_PRESSURE
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

# flags 0x00: mmHg, nothing optional.
# 00 | 79 00 = systolic 121 | 51 00 = diastolic 81 | 5e 00 = MAP 94
BP_MINIMAL = bytes.fromhex("00790051005e00")

# flags 0x1E: mmHg (bit0 off), timestamp (bit1), pulse (bit2), user id (bit3), status (bit4).
# 1e | 7900 sys 121 | 5100 dia 81 | 5e00 MAP 94
# | ea07 03 0f 08 1e 00 = 2026-03-15 08:30:00 | 4800 pulse 72 | 01 user 1
# | 0500 status = body movement (bit0) + irregular pulse (bit2)
BP_FULL = bytes.fromhex("1e790051005e00ea07030f081e004800010500")

# flags 0x01: kPa. 16.0 kPa = mantissa 160, exp -1 -> 0xF0A0; 10.7 kPa -> 107e-1 = 0xF06B;
# MAP NaN (0x07FF: the cuff did not compute it).
BP_KPA = bytes.fromhex("01a0f06bf0ff07")


def test_minimal_measurement() -> None:
    m = BloodPressureMeasurement.from_bytes(BP_MINIMAL)
    assert m == BloodPressureMeasurement(121.0, 81.0, 94.0)
    assert bytes(m) == BP_MINIMAL


def test_every_optional_field() -> None:
    m = BloodPressureMeasurement.from_bytes(BP_FULL)
    assert m.timestamp == DateTime(2026, 3, 15, 8, 30, 0)
    assert m.pulse_rate == 72.0
    assert m.user_id == 1
    assert m.status == 0x0005
    assert m.status_flags() == {"body_movement", "irregular_pulse"}
    assert bytes(m) == BP_FULL


@pytest.mark.parametrize(
    ("flag", "present"),
    [(0x02, "timestamp"), (0x04, "pulse_rate"), (0x08, "user_id"), (0x10, "status")],
)
def test_each_flag_bit_alone(flag: int, present: str) -> None:
    tail = {
        0x02: "ea07030f081e00",  # 2026-03-15 08:30:00
        0x04: "4800",  # pulse 72
        0x08: "ff",  # user id 0xFF = unknown user
        0x10: "0000",  # status: nothing detected
    }[flag]
    data = bytes([flag]) + BP_MINIMAL[1:] + bytes.fromhex(tail)
    m = BloodPressureMeasurement.from_bytes(data)
    for name in ("timestamp", "pulse_rate", "user_id", "status"):
        assert (getattr(m, name) is not None) == (name == present)
    assert bytes(m) == data


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0x0001, {"body_movement"}),
        (0x0002, {"cuff_fit_loose"}),
        (0x0004, {"irregular_pulse"}),
        (0x0008, {"pulse_rate_exceeds_upper"}),  # bits 3-4 = 01
        (0x0010, {"pulse_rate_below_lower"}),  # bits 3-4 = 10
        (0x0020, {"improper_position"}),
        (0x0000, set()),
    ],
)
def test_measurement_status_bits(status: int, flags: set[str]) -> None:
    data = bytes([0x10]) + BP_MINIMAL[1:] + status.to_bytes(2, "little")
    assert BloodPressureMeasurement.from_bytes(data).status_flags() == flags


def test_kpa_converted_to_mmhg_keeping_original() -> None:
    m = BloodPressureMeasurement.from_bytes(BP_KPA)
    assert m.kpa
    assert m.mean_arterial is Special.NAN
    (obs,) = BLOOD_PRESSURE.decode(Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_KPA, received_at=RECEIVED_AT)
    sys_v = obs.values["systolic"]
    assert sys_v.value == pytest.approx(16.0 * 7.50062)
    assert (sys_v.original_value, sys_v.original_unit) == (16.0, "kPa")
    assert obs.values["mean_arterial"].special is Special.NAN
    reading = to_reading(obs, DeviceInfo(address="aa", model="cuff"))
    # MAP NaN is not stored as a number: the component is left out.
    assert set(reading.values) == {"systolic", "diastolic"}


def test_observation_and_reading(device: DeviceInfo) -> None:
    (obs,) = BLOOD_PRESSURE.decode("2A35", BP_FULL, received_at=RECEIVED_AT, device=device)
    assert obs.device_time == datetime(2026, 3, 15, 8, 30, tzinfo=UTC)
    assert not obs.clock_unset
    assert obs.raw == BP_FULL
    reading = to_reading(obs)
    assert reading.measured_at == datetime(2026, 3, 15, 8, 30, tzinfo=UTC)
    assert reading.values["pulse"].value == 72.0
    assert reading.flags == ["body_movement", "irregular_pulse"]
    # Same bytes again (a stored record re-sent): same reading id.
    (again,) = BLOOD_PRESSURE.decode("2a35", BP_FULL, received_at=datetime.now(UTC), device=device)
    assert to_reading(again).reading_id == reading.reading_id


def test_unset_clock_is_flagged(device: DeviceInfo) -> None:
    # 2000-01-01 00:00:00: the cuff's clock was reset by a battery change.
    data = bytes([0x02]) + BP_MINIMAL[1:] + bytes.fromhex("d00701010000 00".replace(" ", ""))
    (obs,) = BLOOD_PRESSURE.decode("2a35", data, received_at=RECEIVED_AT, device=device)
    assert obs.clock_unset
    reading = to_reading(obs)
    assert "device_clock_unset" in reading.flags
    assert reading.measured_at == RECEIVED_AT  # never the year-2000 time


def test_year_zero_means_unknown_time(device: DeviceInfo) -> None:
    data = bytes([0x02]) + BP_MINIMAL[1:] + bytes(7)
    (obs,) = BLOOD_PRESSURE.decode("2a35", data, received_at=RECEIVED_AT, device=device)
    assert obs.device_time is None
    assert obs.clock_unset


def test_intermediate_cuff_pressure() -> None:
    # 00 | 9600 cuff 150 mmHg | ff07 NaN | ff07 NaN
    data = bytes.fromhex("009600ff07ff07")
    icp = IntermediateCuffPressure.from_bytes(data)
    assert icp.cuff_pressure == 150.0
    assert bytes(icp) == data
    assert BLOOD_PRESSURE.decode(Uuid.INTERMEDIATE_CUFF_PRESSURE, data, received_at=RECEIVED_AT) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (BP_MINIMAL[:-1], "truncated"),
        (BP_MINIMAL + b"\x00", "trailing"),
        (bytes([0x02]) + BP_MINIMAL[1:], "truncated"),  # timestamp announced, absent
        (bytes([0x20]) + BP_MINIMAL[1:], "reserved flag"),
        (bytes([0x10]) + BP_MINIMAL[1:] + b"\x18\x00", "pulse rate range"),  # range 3 reserved
        (bytes([0x10]) + BP_MINIMAL[1:] + b"\x40\x00", "reserved measurement status"),
        (bytes([0x02]) + BP_MINIMAL[1:] + bytes.fromhex("ea070d0f081e00"), "impossible"),  # month 13
        (bytes([0x02]) + BP_MINIMAL[1:] + bytes.fromhex("ea07021e081e00"), "impossible"),  # 30 Feb
        (bytes([0x02]) + BP_MINIMAL[1:] + bytes.fromhex("ea07030f181e00"), "impossible"),  # hour 24
    ],
)
def test_malformed_raises_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        BloodPressureMeasurement.from_bytes(data)
    assert reason in err.value.reason
    assert err.value.raw == data
    with pytest.raises(DecodeError):
        BLOOD_PRESSURE.decode("2a35", data, received_at=RECEIVED_AT)


def test_reset_clock_records_at_the_same_time_do_not_collide(device: DeviceInfo) -> None:
    ts = bytes.fromhex("d00701010000 00".replace(" ", ""))  # 2000-01-01 00:00:00, reset clock
    first = bytes([0x02]) + BP_MINIMAL[1:] + ts
    second = bytes([0x02]) + bytes.fromhex("820055006200") + ts  # 130/85, same time
    (a,) = BLOOD_PRESSURE.decode("2a35", first, received_at=RECEIVED_AT, device=device)
    (b,) = BLOOD_PRESSURE.decode("2a35", second, received_at=RECEIVED_AT, device=device)
    (a_again,) = BLOOD_PRESSURE.decode("2a35", first, received_at=datetime.now(UTC), device=device)
    assert to_reading(a).reading_id != to_reading(b).reading_id
    assert to_reading(a).reading_id == to_reading(a_again).reading_id


def test_future_device_time_is_not_believed(device: DeviceInfo) -> None:
    data = bytes([0x02]) + BP_MINIMAL[1:] + bytes.fromhex("ea07030f0a0000")  # 10:00, an hour ahead
    (obs,) = BLOOD_PRESSURE.decode("2a35", data, received_at=RECEIVED_AT, device=device)
    reading = to_reading(obs)
    assert reading.measured_at == RECEIVED_AT
    assert "device_clock_corrected" in reading.flags


def test_clock_offset_corrects_the_device_time(device: DeviceInfo) -> None:
    (obs,) = BLOOD_PRESSURE.decode("2a35", BP_FULL, received_at=RECEIVED_AT, device=device)
    reading = to_reading(obs, clock_offset=timedelta(minutes=-3))  # device 3 minutes slow
    assert reading.measured_at == datetime(2026, 3, 15, 8, 33, tzinfo=UTC)
    assert "device_clock_corrected" in reading.flags


def test_naive_reception_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        BLOOD_PRESSURE.decode("2a35", BP_MINIMAL, received_at=datetime(2026, 3, 15, 9, 0))
