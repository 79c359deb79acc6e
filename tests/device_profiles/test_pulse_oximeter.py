"""PLX Spot-Check 0x2A5E and PLX Continuous 0x2A5F (Pulse Oximeter Service 1.0)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_profiles.codecs.pulse_oximeter import PlxContinuous, PlxSpotCheck
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime, Uuid
from device_profiles.ieee11073 import Special
from device_profiles.observation import to_reading
from device_profiles.sig import PULSE_OXIMETER
from device_profiles.wire import DeviceInfo

from .conftest import RECEIVED_AT

TS = "ea07030f08000a"  # 2026-03-15 08:00:10

# 00 | 6100 SpO2 97 % | 4000 pulse 64 bpm
SPOT_MINIMAL = bytes.fromhex("0061004000")

# flags 0x0F: timestamp (bit0), measurement status (bit1), device and sensor status (bit2),
# pulse amplitude index (bit3).
# 0f | 6100 | 4000 | timestamp | 0002 status bit9 "data from measurement storage"
# | 200000 device status bit5 "low perfusion" (uint24) | 19f0 = 25e-1 = PAI 2.5 %
SPOT_FULL = bytes.fromhex("0f61004000" + TS + "000220000019f0")


def test_spot_check_minimal() -> None:
    m = PlxSpotCheck.from_bytes(SPOT_MINIMAL)
    assert m == PlxSpotCheck(97.0, 64.0)
    assert bytes(m) == SPOT_MINIMAL


def test_spot_check_full(device: DeviceInfo) -> None:
    m = PlxSpotCheck.from_bytes(SPOT_FULL)
    assert m.timestamp == DateTime(2026, 3, 15, 8, 0, 10)
    assert (m.measurement_status, m.device_status, m.pulse_amplitude_index) == (0x0200, 0x000020, 2.5)
    assert bytes(m) == SPOT_FULL
    (obs,) = PULSE_OXIMETER.decode(Uuid.PLX_SPOT_CHECK_MEASUREMENT, SPOT_FULL, received_at=RECEIVED_AT, device=device)
    assert obs.flags == {"from_stored_records", "low_perfusion"}
    reading = to_reading(obs)
    assert reading.values["spo2"].value == 97.0
    assert reading.values["pulse"].value == 64.0
    assert reading.measured_at == datetime(2026, 3, 15, 8, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(("flag", "tail"), [(0x01, TS), (0x02, "0000"), (0x04, "000000"), (0x08, "19f0")])
def test_each_spot_check_flag_bit(flag: int, tail: str) -> None:
    data = bytes([flag]) + SPOT_MINIMAL[1:] + bytes.fromhex(tail)
    assert bytes(PlxSpotCheck.from_bytes(data)) == data


def test_device_clock_not_set_flag() -> None:
    data = bytes.fromhex("1161004000" + TS)  # bit4: device clock is not set
    (obs,) = PULSE_OXIMETER.decode(Uuid.PLX_SPOT_CHECK_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert obs.clock_unset
    assert to_reading(obs, DeviceInfo(address="a", model="m")).measured_at == RECEIVED_AT


@pytest.mark.parametrize(
    ("status", "device_status", "flag"),
    [
        (0x4000, 0, "measurement_unstable"),  # questionable measurement
        (0x0020, 0, "measurement_unstable"),  # measurement ongoing
        (0x8000, 0, "sensor_malfunction"),  # invalid measurement
        (0, 0x000002, "sensor_malfunction"),  # equipment malfunction
        (0, 0x008000, "sensor_malfunction"),  # sensor disconnected
        (0, 0x000010, "measurement_unstable"),  # poor signal
    ],
)
def test_status_bits_map_to_flags(status: int, device_status: int, flag: str) -> None:
    data = bytes([0x06]) + SPOT_MINIMAL[1:] + status.to_bytes(2, "little") + device_status.to_bytes(3, "little")
    (obs,) = PULSE_OXIMETER.decode(Uuid.PLX_SPOT_CHECK_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert flag in obs.flags


def test_demonstration_data_is_not_a_reading() -> None:
    data = bytes([0x02]) + SPOT_MINIMAL[1:] + (0x0400).to_bytes(2, "little")
    assert PULSE_OXIMETER.decode(Uuid.PLX_SPOT_CHECK_MEASUREMENT, data, received_at=RECEIVED_AT) == []


def test_nan_spo2_is_not_a_reading() -> None:
    data = bytes.fromhex("00ff074000")  # SpO2 NaN (no signal yet)
    (obs,) = PULSE_OXIMETER.decode(Uuid.PLX_SPOT_CHECK_MEASUREMENT, data, received_at=RECEIVED_AT)
    assert obs.values["spo2"].special is Special.NAN
    with pytest.raises(DecodeError, match="no_value"):
        to_reading(obs, DeviceInfo(address="a", model="m"))


# Continuous, flags 0x1F: fast (bit0), slow (bit1), measurement status (bit2), device
# status (bit3), PAI (bit4). 1f | 6100 4000 normal 97/64 | 6000 4100 fast 96/65
# | 6100 3f00 slow 97/63 | 0000 status | 000000 device status | 19f0 PAI 2.5
CONT_FULL = bytes.fromhex("1f610040006000410061003f00000000000019f0")


def test_continuous() -> None:
    m = PlxContinuous.from_bytes(CONT_FULL)
    assert (m.spo2_pct, m.pulse_rate, m.fast, m.slow) == (97.0, 64.0, (96.0, 65.0), (97.0, 63.0))
    assert bytes(m) == CONT_FULL
    (obs,) = PULSE_OXIMETER.decode(Uuid.PLX_CONTINUOUS_MEASUREMENT, CONT_FULL, received_at=RECEIVED_AT)
    assert obs.device_time is None
    assert obs.values["spo2"].value == 97.0


@pytest.mark.parametrize(
    ("flag", "tail"), [(0x01, "60004100"), (0x02, "61003f00"), (0x04, "0000"), (0x08, "000000"), (0x10, "19f0")]
)
def test_each_continuous_flag_bit(flag: int, tail: str) -> None:
    data = bytes([flag]) + bytes.fromhex("61004000" + tail)
    assert bytes(PlxContinuous.from_bytes(data)) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        SPOT_MINIMAL[:-1],
        SPOT_MINIMAL + b"\x00",
        bytes.fromhex("2061004000"),  # reserved flag bit5
        bytes.fromhex("0161004000"),  # timestamp announced, absent
        bytes.fromhex("02610040000100"),  # reserved measurement status bit0
        bytes.fromhex("0461004000000001"),  # reserved device status bit16
        bytes.fromhex("0161004000ea07030f08003c"),  # 60 seconds
    ],
)
def test_malformed_spot_check(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        PlxSpotCheck.from_bytes(data)
    assert err.value.raw == data


@pytest.mark.parametrize("data", [b"", bytes.fromhex("0161004000"), bytes.fromhex("4061004000")])
def test_malformed_continuous(data: bytes) -> None:
    with pytest.raises(DecodeError):
        PlxContinuous.from_bytes(data)
