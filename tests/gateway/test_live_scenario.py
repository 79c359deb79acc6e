"""Live scenarios: measurements planned for later reach the gateway when their time comes
(the demo's live gateways), including CGM records across sensor sessions."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.ble.devices import CgmSensor
from simulators.ble.radio import VirtualRadio
from simulators.ble.scenario import device_from_spec
from tests.gateway.helpers import Collector, running, settings_for, until


async def test_scheduled_measurements_arrive_over_time(radio: VirtualRadio, tmp_path: Path, mqtt_url: str) -> None:
    gw_id = "gw-live-1"
    now = datetime.now(UTC)
    # The CGM's first session began weeks ago (the old fixed session start would overflow
    # its 16-bit minute offsets late in a year); one record is old, two are yet to come.
    cgm_times = [now - timedelta(days=20), now - timedelta(minutes=5), now + timedelta(seconds=1.5)]
    bp_at = now + timedelta(seconds=2.5)
    radio.add(
        device_from_spec(
            {
                "type": "cgm",
                "address": "F0:00:00:00:01:03",
                "session_start": (now - timedelta(days=21)).isoformat(),
                "measurements": [{"mg_dl": 90 + 18 * i, "at": t.isoformat()} for i, t in enumerate(cgm_times)],
            }
        )
    )
    radio.add(
        device_from_spec(
            {
                "type": "blood_pressure",
                "address": "F0:00:00:00:01:01",
                "measurements": [{"systolic": 151, "diastolic": 95, "pulse": 71, "at": bp_at.isoformat()}],
            }
        )
    )
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(lambda: len(collector.readings()) >= 2, limit_s=10, what="the CGM backlog")
            first = {r["measured_at"] for r in collector.readings()}
            # Nothing planned for later has been taken yet.
            assert all(datetime.fromisoformat(t) < now for t in first)
            await until(lambda: len(collector.readings()) >= 4, limit_s=15, what="the later measurements")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
        assert time.time() >= bp_at.timestamp()
    finally:
        collector.close()
    readings = collector.readings()
    cgm = sorted(datetime.fromisoformat(r["measured_at"]) for r in readings if r["kind"] == "glucose_cgm")
    assert cgm == [t.replace(second=0, microsecond=0) for t in cgm_times]
    [bp] = [r for r in readings if r["kind"] == "blood_pressure"]
    assert bp["values"]["systolic"]["value"] == pytest.approx(151)
    assert datetime.fromisoformat(bp["measured_at"]) == pytest.approx(bp_at, abs=timedelta(seconds=2))
    dev = radio.get("F0:00:00:00:01:03")
    assert isinstance(dev, CgmSensor)
    assert not dev.ended_sessions
    assert dev.connections >= 3  # the lost one, the old session again, the new session
    assert not dev.scheduled


async def test_cgm_sessions_survive_a_lost_link(radio: VirtualRadio, tmp_path: Path, mqtt_url: str) -> None:
    gw_id = "gw-live-2"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    old = [now - timedelta(days=20, hours=h) for h in (3, 2, 1)]
    new = [now - timedelta(minutes=m) for m in (10, 5)]
    dev = radio.add(
        device_from_spec(
            {
                "type": "cgm",
                "address": "F0:00:00:00:02:03",
                "session_start": (now - timedelta(days=21)).isoformat(),
                "measurements": [{"mg_dl": 100 + i, "at": t.isoformat()} for i, t in enumerate(old + new)],
            }
        )
    )
    assert isinstance(dev, CgmSensor)
    dev.drop_after = 1  # the link is lost during the old session's transfer
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(lambda: len({r["measured_at"] for r in collector.readings()}) >= 5, what="both sessions")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
    finally:
        collector.close()
    got = sorted({datetime.fromisoformat(r["measured_at"]) for r in collector.readings()})
    assert got == old + new
    assert not dev.ended_sessions
    assert dev.connections >= 3  # the lost one, the old session again, the new session
