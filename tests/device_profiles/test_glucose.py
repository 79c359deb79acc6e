"""Glucose Measurement 0x2A18, Glucose Measurement Context 0x2A34 (Glucose Service 1.0)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_profiles.codecs.glucose import GlucoseMeasurement, GlucoseMeasurementContext, with_context
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import GLUCOSE
from device_profiles.units import MG_DL_PER_MMOL_L
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

BASE = "ea07030f072d00"  # base time 2026-03-15 07:45:00

# flags 0x1B = time offset (bit0) + concentration/type/location (bit1) + status (bit3)
#              + context follows (bit4); bit2 off = kg/L.
# 1b | 1700 seq 23 | base time | 0500 offset +5 min
# | 75b0 = exp 0xB (-5), mantissa 0x075 (117) = 0.00117 kg/L = 117 mg/dL
# | 11 = sample location 1 finger (high nibble), type 1 capillary whole blood (low nibble)
# | 0000 sensor status: nothing
GLUCOSE_FULL = bytes.fromhex("1b1700" + BASE + "050075b0110000")

# flags 0x06 = concentration (bit1) + mol/L (bit2).
# 06 | 0100 seq 1 | base | 37c0 = exp 0xC (-4), mantissa 55 = 0.0055 mol/L = 5.5 mmol/L
# | 12 = finger, capillary plasma
GLUCOSE_MOL = bytes.fromhex("060100" + BASE + "37c012")

# flags 0x0A = concentration + status. 14b0 = 20e-5 kg/L = 20 mg/dL (the meter's floor)
# | 11 | 4000 status bit6 = result lower than the device can process ("LO")
GLUCOSE_LOW = bytes.fromhex("0a0200" + BASE + "14b0114000")

# flags 0x00: a stored record with no result at all (seq 3).
GLUCOSE_EMPTY = bytes.fromhex("000300" + BASE)


def test_full_measurement() -> None:
    m = GlucoseMeasurement.from_bytes(GLUCOSE_FULL)
    assert m.sequence == 23
    assert m.base_time == DateTime(2026, 3, 15, 7, 45, 0)
    assert m.time_offset_min == 5
    assert m.concentration == 0.00117
    assert not m.mol_per_l
    assert (m.sample_type, m.sample_location) == (1, 1)
    assert m.sensor_status == 0
    assert m.context_follows
    assert bytes(m) == GLUCOSE_FULL


def test_kg_per_litre_becomes_mmol_keeping_mg_dl() -> None:
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_FULL, received_at=RECEIVED_AT)
    g = obs.values["glucose"]
    assert g.value == pytest.approx(117 / MG_DL_PER_MMOL_L)
    assert (g.original_value, g.original_unit) == (117.0, "mg/dL")
    assert obs.sequence == 23
    assert obs.device_time == datetime(2026, 3, 15, 7, 50, tzinfo=UTC)  # base + 5 min


def test_mol_per_litre() -> None:
    m = GlucoseMeasurement.from_bytes(GLUCOSE_MOL)
    assert m.mol_per_l
    assert m.time_offset_min is None
    assert m.sensor_status is None
    assert bytes(m) == GLUCOSE_MOL
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_MOL, received_at=RECEIVED_AT)
    assert obs.values["glucose"].value == pytest.approx(5.5)
    assert obs.device_time == datetime(2026, 3, 15, 7, 45, tzinfo=UTC)


def test_sensor_low_is_censored_not_a_number() -> None:
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_LOW, received_at=RECEIVED_AT)
    g = obs.values["glucose"]
    assert g.value is None
    assert g.censored == "low"
    assert g.original_value == 20.0
    assert "sensor_low" in obs.flags
    reading = to_reading(obs, DeviceInfo(address="aa", model="meter"))
    assert reading.values["glucose"].censored == "low"
    assert reading.values["glucose"].value is None


@pytest.mark.parametrize(
    ("status", "flag"),
    [
        (0x0001, "low_battery"),
        (0x0002, "sensor_malfunction"),
        (0x0004, "sensor_malfunction"),  # sample size insufficient
        (0x0400, "sensor_malfunction"),  # general device fault
        (0x0020, "sensor_high"),
        (0x0040, "sensor_low"),
    ],
)
def test_sensor_status_bits(status: int, flag: str) -> None:
    data = bytes.fromhex("0a0200" + BASE + "75b011") + status.to_bytes(2, "little")
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert flag in obs.flags


def test_time_fault_marks_clock_unset() -> None:
    data = bytes.fromhex("0a0200" + BASE + "75b0110008")  # status bit11 time fault
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert obs.clock_unset


def test_negative_time_offset() -> None:
    data = bytes.fromhex("010400" + BASE + "c4ff")  # offset -60 min (sint16 0xFFC4)
    m = GlucoseMeasurement.from_bytes(data)
    assert m.time_offset_min == -60
    assert bytes(m) == data


def test_record_without_result_is_reported_but_not_a_reading() -> None:
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_EMPTY, received_at=RECEIVED_AT)
    assert obs.values["glucose"].special is Special.NAN
    with pytest.raises(DecodeError, match="no_value"):
        to_reading(obs, DeviceInfo(address="aa", model="meter"))


def test_control_solution_is_never_a_reading() -> None:
    data = bytes.fromhex("020500" + BASE + "75b04a")  # location 4 control, type 10 control
    assert GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, data, received_at=RECEIVED_AT) == []


def test_reading_id_uses_sequence_number() -> None:
    dev = DeviceInfo(address="aa", model="meter", serial="GM-1")
    (a,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_MOL, received_at=RECEIVED_AT, device=dev)
    (b,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_MOL, received_at=datetime.now(UTC), device=dev)
    assert to_reading(a).reading_id == to_reading(b).reading_id


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (GLUCOSE_FULL[:-1], "truncated"),
        (GLUCOSE_MOL + b"\x00", "trailing"),
        (bytes.fromhex("200100" + BASE), "reserved flag"),
        (bytes.fromhex("020100" + BASE + "75b010"), "sample type"),  # type 0 reserved
        (bytes.fromhex("020100" + BASE + "75b00b"), "sample type"),  # type 11 reserved
        (bytes.fromhex("020100" + BASE + "75b051"), "sample location"),  # location 5
        (bytes.fromhex("080100" + BASE + "0010"), "reserved sensor status"),  # bit12
        (bytes.fromhex("000100ea07041f072d00"), "impossible"),  # 31 April
    ],
)
def test_malformed_measurement(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        GlucoseMeasurement.from_bytes(data)
    assert reason in err.value.reason
    assert err.value.raw == data


# Context flags 0xFF: carbohydrate (bit0), meal (bit1), tester-health (bit2), exercise
# (bit3), medication (bit4), medication in litres (bit5), HbA1c (bit6), extended (bit7).
# ff | 1700 seq 23 | 00 extended flags
# | 01 breakfast, 05e0 = 5e-2 kg (50 g) carbohydrate
# | 02 meal postprandial
# | 51 = health 5 "no health issues" (high nibble), tester 1 "self" (low nibble)
# | 0807 exercise 1800 s, 32 intensity 50 %
# | 01 rapid-acting insulin, 04b0 = 4e-5 L (0.04 mL)
# | 41f0 = 65e-1 = HbA1c 6.5 %
CONTEXT_FULL = bytes.fromhex("ff1700000105e002510807320104b041f0")
CONTEXT_MEAL = bytes.fromhex("02170001")  # meal only: preprandial


def test_full_context() -> None:
    c = GlucoseMeasurementContext.from_bytes(CONTEXT_FULL)
    assert c.sequence == 23
    assert c.extended_flags == 0
    assert (c.carbohydrate_id, c.carbohydrate_kg) == (1, 0.05)
    assert c.meal == 2
    assert (c.tester, c.health) == (1, 5)
    assert (c.exercise_duration_s, c.exercise_intensity_pct) == (1800, 50)
    assert (c.medication_id, c.medication, c.medication_in_litres) == (1, 4e-5, True)
    assert c.hba1c_pct == 6.5
    assert bytes(c) == CONTEXT_FULL
    assert c.meal_flags() == {"meal_postprandial"}


@pytest.mark.parametrize(
    ("flag", "tail"),
    [(0x01, "0305e0"), (0x02, "05"), (0x04, "f2"), (0x08, "ffff64"), (0x10, "05b004"), (0x40, "41f0")],
)
def test_context_each_flag_bit(flag: int, tail: str) -> None:
    data = bytes([flag]) + bytes.fromhex("1700" + tail)
    c = GlucoseMeasurementContext.from_bytes(data)
    assert bytes(c) == data


def test_context_annotates_its_measurement() -> None:
    (obs,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_FULL, received_at=RECEIVED_AT)
    merged = with_context(obs, GlucoseMeasurementContext.from_bytes(CONTEXT_MEAL))
    assert "meal_preprandial" in merged.flags
    with pytest.raises(ValueError, match="does not belong"):
        with_context(obs, GlucoseMeasurementContext.from_bytes(bytes.fromhex("02180001")))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (CONTEXT_FULL[:-1], "truncated"),
        (CONTEXT_MEAL + b"\x00", "trailing"),
        (bytes.fromhex("02170006"), "meal"),  # meal 6 reserved
        (bytes.fromhex("02170000"), "meal"),  # meal 0 reserved
        (bytes.fromhex("0117000832d0"), "carbohydrate"),  # id 8 reserved
        (bytes.fromhex("04170054"), "tester/health"),  # tester 4 reserved
        (bytes.fromhex("081700080765"), "intensity"),  # 101 %
        (bytes.fromhex("80170001"), "extended"),
    ],
)
def test_malformed_context(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        GlucoseMeasurementContext.from_bytes(data)
    assert reason in err.value.reason


def test_non_canonical_sfloat_forms_decode_to_the_same_value() -> None:
    # 50 g may come as 50e-3 kg (0xD032) instead of 5e-2 kg (0xE005).
    c = GlucoseMeasurementContext.from_bytes(bytes.fromhex("0117000132d0"))
    assert c.carbohydrate_kg == 0.05
    assert GlucoseMeasurementContext.from_bytes(bytes(c)) == c


def test_reading_id_survives_a_sequence_restart() -> None:
    # Same sequence number, different base time: a meter that restarted its numbering.
    dev = DeviceInfo(address="aa", model="meter", serial="GM-1")
    later = bytes.fromhex("060100ea07040f072d0037c012")  # 2026-04-15
    (a,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, GLUCOSE_MOL, received_at=RECEIVED_AT, device=dev)
    (b,) = GLUCOSE.decode(Uuid.GLUCOSE_MEASUREMENT, later, received_at=RECEIVED_AT, device=dev)
    assert to_reading(a).reading_id != to_reading(b).reading_id
