"""Temperature Measurement 0x2A1C (Health Thermometer Service 1.0)."""

from __future__ import annotations

import pytest

from device_profiles.codecs.thermometer import IntermediateTemperature, TemperatureMeasurement
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import HEALTH_THERMOMETER
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

# flags 0x06: Celsius (bit0 off), timestamp (bit1), type (bit2).
# 06 | 6e0100ff = FLOAT exp 0xFF (-1), mantissa 0x00016E (366) = 36.6 °C
# | ea07030f073000 = 2026-03-15 07:48:00 | 02 = body (general)
TEMP_FULL = bytes.fromhex("066e0100ffea07030f07300002")

# flags 0x01: Fahrenheit. da0300ff = 986e-1 = 98.6 °F = 37.0 °C
TEMP_F = bytes.fromhex("01da0300ff")


def test_celsius_with_timestamp_and_type(device: DeviceInfo) -> None:
    m = TemperatureMeasurement.from_bytes(TEMP_FULL)
    assert m == TemperatureMeasurement(36.6, False, DateTime(2026, 3, 15, 7, 48, 0), 2)
    assert bytes(m) == TEMP_FULL
    (obs,) = HEALTH_THERMOMETER.decode(Uuid.TEMPERATURE_MEASUREMENT, TEMP_FULL, received_at=RECEIVED_AT, device=device)
    assert obs.values["temperature"].value == 36.6
    assert obs.extras["site"] == "body"
    assert to_reading(obs).values["temperature"].value == 36.6


def test_fahrenheit_converted() -> None:
    m = TemperatureMeasurement.from_bytes(TEMP_F)
    assert (m.temperature, m.fahrenheit) == (98.6, True)
    assert bytes(m) == TEMP_F
    (obs,) = HEALTH_THERMOMETER.decode(Uuid.TEMPERATURE_MEASUREMENT, TEMP_F, received_at=RECEIVED_AT)
    t = obs.values["temperature"]
    assert t.value == pytest.approx(37.0)
    assert (t.original_value, t.original_unit) == (98.6, "[degF]")


@pytest.mark.parametrize(("flag", "tail"), [(0x02, "ea07030f073000"), (0x04, "09")])
def test_each_flag_bit(flag: int, tail: str) -> None:
    data = bytes([flag]) + bytes.fromhex("6e0100ff" + tail)
    assert bytes(TemperatureMeasurement.from_bytes(data)) == data


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        ("ffff7f00", Special.NAN),
        ("00008000", Special.NRES),
        ("feff7f00", Special.POS_INF),
        ("02008000", Special.NEG_INF),
    ],
)
def test_float_specials(raw: str, special: Special) -> None:
    m = TemperatureMeasurement.from_bytes(bytes.fromhex("00" + raw))
    assert m.temperature is special


def test_intermediate_temperature_is_not_stored() -> None:
    data = bytes.fromhex("006e0100ff")
    assert IntermediateTemperature.from_bytes(data).measurement.temperature == 36.6
    assert HEALTH_THERMOMETER.decode(Uuid.INTERMEDIATE_TEMPERATURE, data, received_at=RECEIVED_AT) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("006e0100"),  # FLOAT truncated
        bytes.fromhex("086e0100ff"),  # reserved flag bit3
        bytes.fromhex("046e0100ff00"),  # type 0 reserved
        bytes.fromhex("046e0100ff0a"),  # type 10 reserved
        bytes.fromhex("026e0100ff"),  # timestamp announced, absent
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        TemperatureMeasurement.from_bytes(data)
