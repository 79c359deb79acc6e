"""DeviceSession: the per-connection state machine (CGM session start, glucose context)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid
from device_profiles.session import DeviceSession
from device_profiles.sig import BLOOD_PRESSURE, CGM, GLUCOSE

from . import test_cgm as cgm
from . import test_glucose as glu
from .conftest import DEVICE, RECEIVED_AT


def test_glucose_waits_for_its_context() -> None:
    s = DeviceSession(GLUCOSE, DEVICE)
    # GLUCOSE_FULL has "context information follows" and sequence 23.
    assert s.feed(Uuid.GLUCOSE_MEASUREMENT, glu.GLUCOSE_FULL, received_at=RECEIVED_AT) == []
    (obs,) = s.feed(Uuid.GLUCOSE_MEASUREMENT_CONTEXT, glu.CONTEXT_MEAL, received_at=RECEIVED_AT)
    assert obs.sequence == 23
    assert "meal_preprandial" in obs.flags
    assert s.flush() == []


def test_measurement_without_its_context_is_released_not_lost() -> None:
    s = DeviceSession(GLUCOSE, DEVICE)
    assert s.feed("2a18", glu.GLUCOSE_FULL, received_at=RECEIVED_AT) == []
    released = s.feed("2a18", glu.GLUCOSE_MOL, received_at=RECEIVED_AT)  # next record, no context
    assert [o.sequence for o in released] == [23, 1]
    assert s.feed("2a18", glu.GLUCOSE_FULL, received_at=RECEIVED_AT) == []
    assert [o.sequence for o in s.flush()] == [23]  # on disconnect


def test_context_for_an_unknown_measurement_is_ignored() -> None:
    s = DeviceSession(GLUCOSE, DEVICE)
    assert s.feed("2a34", glu.CONTEXT_MEAL, received_at=RECEIVED_AT) == []


def test_cgm_uses_the_session_start_read_first() -> None:
    s = DeviceSession(CGM, DEVICE)
    assert s.feed(Uuid.CGM_SESSION_START_TIME, cgm.SESSION_START, received_at=RECEIVED_AT) == []
    assert s.session_start == datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
    (obs,) = s.feed(Uuid.CGM_MEASUREMENT, cgm.CGM_MINIMAL, received_at=RECEIVED_AT)
    assert obs.device_time == datetime(2026, 3, 15, 6, 0, tzinfo=UTC) + timedelta(minutes=5)


def test_battery_and_device_information() -> None:
    s = DeviceSession(BLOOD_PRESSURE)
    s.feed("2a19", b"\x2a", received_at=RECEIVED_AT)
    s.feed("2a25", b"BP-0001", received_at=RECEIVED_AT)
    s.feed("2a24", b"Cuff 7\x00", received_at=RECEIVED_AT)
    s.feed("2a26", b"1.2.3", received_at=RECEIVED_AT)
    info = s.device_info("AA:BB:CC:DD:EE:FF")
    assert (info.model, info.serial, info.firmware, info.battery_pct) == ("Cuff 7", "BP-0001", "1.2.3", 42)


def test_garbage_raises_and_leaves_state_alone() -> None:
    s = DeviceSession(CGM, DEVICE)
    s.feed(Uuid.CGM_SESSION_START_TIME, cgm.SESSION_START, received_at=RECEIVED_AT)
    with pytest.raises(DecodeError):
        s.feed(Uuid.CGM_SESSION_START_TIME, b"\x00", received_at=RECEIVED_AT)
    assert s.session_start == datetime(2026, 3, 15, 6, 0, tzinfo=UTC)


def test_sensor_with_e2e_crc_must_send_it() -> None:
    s = DeviceSession(CGM, DEVICE)
    s.feed(
        Uuid.CGM_FEATURE,
        cgm.FEATURE_BODY + cgm.e2e_crc(cgm.FEATURE_BODY).to_bytes(2, "little"),
        received_at=RECEIVED_AT,
    )
    assert s.cgm_crc_required
    assert len(s.feed(Uuid.CGM_MEASUREMENT, cgm.CGM_CRC, received_at=RECEIVED_AT)) == 1
    with pytest.raises(DecodeError, match="E2E-CRC missing"):
        s.feed(Uuid.CGM_MEASUREMENT, cgm.CGM_FULL, received_at=RECEIVED_AT)
