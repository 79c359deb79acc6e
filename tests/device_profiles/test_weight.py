"""Weight Measurement 0x2A9D and Body Composition Measurement 0x2A9C."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_profiles.codecs.weight import BodyCompositionMeasurement, WeightMeasurement
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import BODY_COMPOSITION, WEIGHT_SCALE
from device_profiles.units import KG_PER_LB
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

TS = "ea07030f071e00"  # 2026-03-15 07:30:00

# flags 0x0E: SI (bit0 off), timestamp (bit1), user id (bit2), BMI + height (bit3).
# 0e | e43e = 16100 x 0.005 kg = 80.5 kg | timestamp | 01 user 1
# | f800 = 248 x 0.1 = BMI 24.8 | 0a07 = 1802 x 0.001 m = 1.802 m
WEIGHT_SI = bytes.fromhex("0ee43e" + TS + "01f8000a07")

# flags 0x01: imperial. 5345 = 17747 x 0.01 lb = 177.47 lb
WEIGHT_LB = bytes.fromhex("015345")

# flags 0x09: imperial + BMI/height. 5345 177.47 lb | f800 BMI 24.8 | bf02 = 703 x 0.1 in = 70.3 in
WEIGHT_LB_HEIGHT = bytes.fromhex("095345f800bf02")

# flags 0x00, weight 0xFFFF = "measurement unsuccessful"
WEIGHT_FAILED = bytes.fromhex("00ffff")


def test_si_weight_with_everything(device: DeviceInfo) -> None:
    m = WeightMeasurement.from_bytes(WEIGHT_SI)
    assert m == WeightMeasurement(80.5, False, DateTime(2026, 3, 15, 7, 30, 0), 1, 24.8, 1.802)
    assert bytes(m) == WEIGHT_SI
    (obs,) = WEIGHT_SCALE.decode(Uuid.WEIGHT_MEASUREMENT, WEIGHT_SI, received_at=RECEIVED_AT, device=device)
    assert obs.values["weight"].value == 80.5
    assert obs.values["bmi"].value == 24.8
    assert obs.values["height"].value == pytest.approx(180.2)  # stored in cm
    reading = to_reading(obs)
    assert reading.measured_at == datetime(2026, 3, 15, 7, 30, tzinfo=UTC)
    assert set(reading.values) == {"weight", "bmi", "height"}


def test_imperial_weight_converted_to_kg() -> None:
    m = WeightMeasurement.from_bytes(WEIGHT_LB)
    assert (m.weight, m.imperial) == (177.47, True)
    assert bytes(m) == WEIGHT_LB
    (obs,) = WEIGHT_SCALE.decode(Uuid.WEIGHT_MEASUREMENT, WEIGHT_LB, received_at=RECEIVED_AT)
    w = obs.values["weight"]
    assert w.value == pytest.approx(177.47 * KG_PER_LB)
    assert (w.original_value, w.original_unit) == (177.47, "lb")


def test_imperial_height_in_inches() -> None:
    m = WeightMeasurement.from_bytes(WEIGHT_LB_HEIGHT)
    assert m.height == 70.3
    assert bytes(m) == WEIGHT_LB_HEIGHT
    (obs,) = WEIGHT_SCALE.decode(Uuid.WEIGHT_MEASUREMENT, WEIGHT_LB_HEIGHT, received_at=RECEIVED_AT)
    assert obs.values["height"].value == pytest.approx(70.3 * 2.54)


@pytest.mark.parametrize(("flag", "tail"), [(0x02, TS), (0x04, "ff"), (0x08, "f8000a07")])
def test_each_weight_flag_bit(flag: int, tail: str) -> None:
    data = bytes([flag]) + bytes.fromhex("e43e" + tail)
    assert bytes(WeightMeasurement.from_bytes(data)) == data


def test_unsuccessful_weight_is_no_number() -> None:
    m = WeightMeasurement.from_bytes(WEIGHT_FAILED)
    assert m.weight is None
    (obs,) = WEIGHT_SCALE.decode(Uuid.WEIGHT_MEASUREMENT, WEIGHT_FAILED, received_at=RECEIVED_AT)
    assert obs.values["weight"].special is Special.NAN
    with pytest.raises(DecodeError, match="no_value"):
        to_reading(obs, DeviceInfo(address="aa", model="scale"))


@pytest.mark.parametrize(
    "data",
    [b"", bytes.fromhex("00e4"), bytes.fromhex("02e43e"), bytes.fromhex("10e43e"), WEIGHT_LB + b"\x00"],
)
def test_malformed_weight(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        WeightMeasurement.from_bytes(data)
    assert err.value.raw == data


# Body composition: flags uint16 0x0C06 = timestamp (bit1) + user (bit2) + weight (bit10)
# + height (bit11). 060c | fd00 = 253 x 0.1 = 25.3 % body fat | timestamp | 01 user
# | e43e weight 80.5 kg | 0a07 height 1.802 m
BODY_SI = bytes.fromhex("060cfd00" + TS + "01e43e0a07")
BODY_MINIMAL = bytes.fromhex("0000fd00")


def test_body_composition(device: DeviceInfo) -> None:
    m = BodyCompositionMeasurement.from_bytes(BODY_SI)
    assert (m.body_fat_pct, m.weight, m.height, m.user_id) == (25.3, 80.5, 1.802, 1)
    assert bytes(m) == BODY_SI
    (obs,) = BODY_COMPOSITION.decode(Uuid.BODY_COMPOSITION_MEASUREMENT, BODY_SI, received_at=RECEIVED_AT, device=device)
    reading = to_reading(obs)
    assert reading.values["body_fat"].value == 25.3
    assert reading.values["weight"].value == 80.5
    assert reading.values["height"].value == pytest.approx(180.2)


@pytest.mark.parametrize(
    ("flag", "tail", "attr", "value"),
    [
        (0x0008, "a41f", "basal_metabolism_kj", 8100),  # 0x1FA4 kJ
        (0x0010, "b401", "muscle_pct", 43.6),  # 436 x 0.1 %
        (0x0020, "401f", "muscle_mass", 40.0),  # 8000 x 0.005 kg
        (0x0040, "c02b", "fat_free_mass", 56.0),  # 0x2BC0 = 11200 x 0.005 kg
        (0x0080, "3a27", "soft_lean_mass", 50.21),  # 10042 x 0.005 kg
        (0x0100, "b81d", "body_water_mass", 38.04),  # 0x1DB8 = 7608 x 0.005 kg
        (0x0200, "8813", "impedance_ohm", 500.0),  # 5000 x 0.1 ohm
        (0x0400, "e43e", "weight", 80.5),
        (0x0800, "0a07", "height", 1.802),
        (0x1000, "", "multiple_packet", True),
    ],
)
def test_each_body_composition_flag_bit(flag: int, tail: str, attr: str, value: object) -> None:
    data = flag.to_bytes(2, "little") + bytes.fromhex("fd00" + tail)
    m = BodyCompositionMeasurement.from_bytes(data)
    assert getattr(m, attr) == pytest.approx(value)
    assert bytes(m) == data


def test_body_composition_imperial_masses() -> None:
    data = bytes.fromhex("0104fd005345")  # imperial + weight 177.47 lb
    m = BodyCompositionMeasurement.from_bytes(data)
    assert m.weight == 177.47
    assert bytes(m) == data


@pytest.mark.parametrize(
    "data",
    [b"\x00", BODY_MINIMAL[:-1], BODY_MINIMAL + b"\x00", bytes.fromhex("0020fd00"), bytes.fromhex("0004fd00")],
)
def test_malformed_body_composition(data: bytes) -> None:
    with pytest.raises(DecodeError):
        BodyCompositionMeasurement.from_bytes(data)
