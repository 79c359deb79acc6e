"""User ID of shared cuffs and scales, from hand-worked bytes (not from our encoders).

Blood Pressure Measurement (BLS 1.1 §3.1.1, GSS "Blood Pressure Measurement"): flags bit 0
units, bit 1 Time Stamp, bit 2 Pulse Rate, **bit 3 User ID**, bit 4 Measurement Status;
the User ID (uint8, 0xFF "unknown user") follows the pulse rate.
Weight Measurement (WSS 1.0 §3.2.1, GSS "Weight Measurement"): flags bit 0 units, bit 1
Time Stamp, **bit 2 User ID**, bit 3 BMI and Height; the User ID follows the time stamp.
"""

from __future__ import annotations

from datetime import UTC, datetime

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement
from device_profiles.codecs.weight import WeightMeasurement
from device_profiles.gatt import Uuid
from device_profiles.observation import to_reading, user_index_of
from device_profiles.registry import get_profile
from device_profiles.session import DeviceSession
from device_profiles.wire import DeviceInfo, Reading

RX = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
DEV = DeviceInfo(address="AA:BB:CC:DD:EE:01", model="cuff", serial="S1")

# Flags 0x0C = pulse rate (bit 2) + user id (bit 3), mmHg, no time stamp.
# SFLOAT with exponent 0: systolic 120 = 0x0078, diastolic 80 = 0x0050, MAP 93 = 0x005D,
# pulse 70 = 0x0046, little-endian; then User ID 2.
BP_USER_2 = bytes.fromhex("0c 7800 5000 5d00 4600 02")
# The same with User ID 0xFF: "unknown user".
BP_USER_UNKNOWN = bytes.fromhex("0c 7800 5000 5d00 4600 ff")
# Flags 0x1E = time stamp + pulse + user id + status: 2026-03-15 08:30:00 (year 2026 =
# 0x07EA), pulse 70, User ID 1, status 0x0004 (irregular pulse).
BP_USER_1_FULL = bytes.fromhex("1e 7800 5000 5d00 ea07 03 0f 08 1e 00 4600 01 0400")
# Flags 0x06 = time stamp (bit 1) + user id (bit 2), SI. Weight 72.5 kg at 0.005 kg = 14500
# = 0x38A4; 2026-03-15 08:30:00; User ID 3.
WEIGHT_USER_3 = bytes.fromhex("06 a438 ea07 03 0f 08 1e 00 03")
# Flags 0x04 = user id only; weight 80 kg = 16000 = 0x3E80; User ID 1.
WEIGHT_USER_1 = bytes.fromhex("04 803e 01")


def _reading(profile_id: str, uuid: str, raw: bytes, patient_user: int = 1) -> Reading:
    (obs,) = DeviceSession(get_profile(profile_id)).feed(uuid, raw, received_at=RX)
    return to_reading(obs, DEV, patient_user_index=patient_user)


def test_blood_pressure_user_id_bytes() -> None:
    m = BloodPressureMeasurement.from_bytes(BP_USER_2)
    assert (m.systolic, m.diastolic, m.mean_arterial, m.pulse_rate, m.user_id) == (120, 80, 93, 70, 2)
    full = BloodPressureMeasurement.from_bytes(BP_USER_1_FULL)
    assert (full.user_id, full.status, full.pulse_rate) == (1, 0x0004, 70)


def test_weight_user_id_bytes() -> None:
    m = WeightMeasurement.from_bytes(WEIGHT_USER_3)
    assert (m.weight, m.user_id) == (72.5, 3)
    assert m.timestamp is not None
    assert WeightMeasurement.from_bytes(WEIGHT_USER_1).user_id == 1


def test_the_user_index_is_carried_and_another_user_is_flagged() -> None:
    r = _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_USER_2)
    assert (r.user_index, r.flags) == (2, ["other_user"])
    mine = _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_USER_1_FULL)
    assert (mine.user_index, mine.flags) == (1, ["irregular_pulse"])
    # The kit's enrolment may make the patient user 2 of this cuff.
    assert _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_USER_2, patient_user=2).flags == []
    w = _reading("sig.weight_scale", Uuid.WEIGHT_MEASUREMENT, WEIGHT_USER_3)
    assert (w.user_index, w.flags) == (3, ["other_user"])
    assert _reading("sig.weight_scale", Uuid.WEIGHT_MEASUREMENT, WEIGHT_USER_1).flags == []


def test_unknown_user_is_no_user_index() -> None:
    r = _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_USER_UNKNOWN)
    assert (r.user_index, r.flags) == (None, [])
    (obs,) = DeviceSession(get_profile("sig.blood_pressure")).feed(
        Uuid.BLOOD_PRESSURE_MEASUREMENT, BP_USER_UNKNOWN, received_at=RX
    )
    assert user_index_of(obs) is None


def test_two_users_in_the_same_second_are_two_readings() -> None:
    user_1 = bytes.fromhex("0e 7800 5000 5d00 ea07 03 0f 08 1e 00 4600 01")
    user_2 = bytes.fromhex("0e 7800 5000 5d00 ea07 03 0f 08 1e 00 4600 02")
    a = _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, user_1)
    b = _reading("sig.blood_pressure", Uuid.BLOOD_PRESSURE_MEASUREMENT, user_2)
    assert a.measured_at == b.measured_at
    assert a.reading_id != b.reading_id
