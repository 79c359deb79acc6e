"""Scenario files for the virtual BLE devices: CGM sensor sessions and measurements that
become available as (wall-clock) time passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_profiles.codecs.cgm import CgmFeature
from device_profiles.codecs.racp import RacpOpCode, RacpOperator, RacpRequest
from device_profiles.gatt import Uuid
from device_profiles.registry import get_profile
from device_profiles.session import DeviceSession
from simulators.ble.devices import BloodPressureCuff, CgmSensor
from simulators.ble.radio import VirtualRadio
from simulators.ble.scenario import device_from_spec

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _collect_cgm(dev: CgmSensor) -> list[datetime]:
    """What a collector does per connection: read the session start, then RACP "all records"."""
    times: list[datetime] = []
    while dev.pending or dev.ended_sessions:
        session = DeviceSession(get_profile("sig.cgm"), device_tz=dev.device_tz)
        session.feed(Uuid.CGM_SESSION_START_TIME, dev.read(Uuid.CGM_SESSION_START_TIME), received_at=NOW)
        req = RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        for uuid, data in dev.write(Uuid.RECORD_ACCESS_CONTROL_POINT, bytes(req)):
            if uuid == Uuid.CGM_MEASUREMENT:
                times.extend(o.device_time for o in session.feed(uuid, data, received_at=NOW) if o.device_time)
        dev.transfer_done()
    return times


def test_cgm_honours_the_scenario_session_start_and_starts_new_sessions() -> None:
    # Late in the year (the old fixed 1 January start overflowed the 16-bit minute offset),
    # 20 days of readings: more than one 14-day sensor session.
    start = datetime(2026, 10, 30, 6, 2, 40, tzinfo=UTC)
    at = [start + timedelta(hours=6 * i) for i in range(20 * 4)]
    spec = {
        "type": "cgm",
        "address": "F0:00:00:00:00:33",
        "session_start": start.isoformat(),
        "measurements": [{"mg_dl": 100 + i % 40, "at": t.isoformat()} for i, t in enumerate(at)],
    }
    dev = device_from_spec(spec, now=NOW)
    assert isinstance(dev, CgmSensor)
    assert dev.session_start is not None
    assert dev.session_start > start
    first_session = dev.ended_sessions[0][0]
    assert first_session == start.replace(second=0)  # whole minutes, as the GATT value shows
    assert len(dev.ended_sessions) == 1
    # Every record decodes to its own time (offsets are whole minutes) against its session.
    assert _collect_cgm(dev) == [t.replace(second=0) for t in at]
    assert not dev.advertising


def test_cgm_without_session_start_starts_one_at_its_first_measurement() -> None:
    dev = CgmSensor.create()
    first = datetime(2026, 12, 30, 23, 55, tzinfo=UTC)
    dev.measure(120, at=first)
    dev.measure(130, at=first + timedelta(days=13, hours=23))
    assert dev.session_start == first
    assert not dev.ended_sessions
    dev.measure(140, at=first + timedelta(days=15))  # the 14-day sensor has expired
    assert dev.session_start == first + timedelta(days=15)
    assert _collect_cgm(dev) == [first, first + timedelta(days=13, hours=23), first + timedelta(days=15)]


def test_future_measurements_are_taken_when_their_time_comes() -> None:
    spec = {
        "type": "blood_pressure",
        "address": "F0:00:00:00:00:41",
        "measurements": [
            {"systolic": 120 + i, "diastolic": 80, "pulse": 60, "at": (NOW + timedelta(hours=h)).isoformat()}
            for i, h in enumerate((-2, -1, 1, 3))
        ],
    }
    radio = VirtualRadio()
    dev = radio.add(device_from_spec(spec, now=NOW))
    assert isinstance(dev, BloodPressureCuff)
    assert len(dev.pending) == 2
    assert len(dev.scheduled) == 2
    dev.pending.clear()
    dev.transfer_done()
    assert radio.advertising() == []
    assert radio.release_due(NOW + timedelta(minutes=59)) == 0
    assert radio.release_due(NOW + timedelta(hours=1)) == 1
    assert radio.advertising() == [dev]
    assert len(dev.pending) == 1
    assert radio.release_due(NOW + timedelta(hours=5)) == 1
    assert not dev.scheduled
    assert len(dev.pending) == 2


def test_schedule_keeps_time_order() -> None:
    dev = BloodPressureCuff.create()
    dev.schedule(NOW + timedelta(hours=2), systolic=130, diastolic=85, pulse=70)
    dev.schedule(NOW + timedelta(hours=1), systolic=120, diastolic=80, pulse=60)
    assert [t for t, _ in dev.scheduled] == [NOW + timedelta(hours=1), NOW + timedelta(hours=2)]
    assert dev.release_due(NOW + timedelta(hours=1, minutes=30)) == 1
    assert dev.scheduled[0][0] == NOW + timedelta(hours=2)


def test_an_ended_cgm_session_survives_a_lost_link() -> None:
    dev = CgmSensor.create()
    first = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    for i in range(3):
        dev.measure(100 + i, at=first + timedelta(hours=i))
    dev.measure(150, at=first + timedelta(days=15))  # a new sensor
    req = RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
    sent = dev.write(Uuid.RECORD_ACCESS_CONTROL_POINT, bytes(req))
    assert len(sent) == 4  # the old session's three records and the RACP response
    # The link drops after the first record: the radio hands back what was not delivered.
    dev.keep_unsent(*sent[1])
    dev.keep_unsent(*sent[2])
    dev.link_lost()
    assert len(dev.pending) == 1  # only the new session's record; nothing mixed in
    # The next connection still sees the old session, then the new one, all times right.
    assert _collect_cgm(dev) == [first + timedelta(hours=i) for i in range(3)] + [first + timedelta(days=15)]


def test_cgm_feature_reads_as_multiple_sessions_without_crc() -> None:
    dev = CgmSensor.create()
    raw = dev.read(Uuid.CGM_FEATURE)
    session = DeviceSession(get_profile("sig.cgm"))
    assert session.feed(Uuid.CGM_FEATURE, raw, received_at=NOW) == []
    assert not session.cgm_crc_required
    assert CgmFeature.from_bytes(raw).features & (1 << 14)
