"""Failure injection: broker outage, link loss mid-transfer, garbage bytes (real Mosquitto)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.localstack import LocalMosquitto
from device_profiles.codecs.racp import RacpOperator
from device_profiles.gatt import Uuid
from simulators.ble.devices import BloodPressureCuff, GlucoseMeter
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, running, settings_for, until

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


@pytest.mark.slow
async def test_broker_down_for_500_measurements_all_arrive_once_in_order(
    radio: VirtualRadio, tmp_path: Path, make_mosquitto: Callable[..., LocalMosquitto]
) -> None:
    broker = make_mosquitto()
    gw_id = "gw-outage-1"
    collector = Collector(broker.url, [f"egenmon/v1/gw/{gw_id}/readings"])
    cuff = radio.add(BloodPressureCuff.create())
    try:
        async with running(settings_for(tmp_path, broker.url, gw_id, batch_max_readings=50)) as gw:
            await until(gw.publisher.connected.is_set, what="gateway connected")
            broker.stop()
            await until(lambda: not gw.publisher.connected.is_set(), what="gateway noticed the outage")
            # 500 measurements over the outage, taken in rounds as a patient would.
            for round_ in range(5):
                for i in range(100):
                    n = round_ * 100 + i
                    cuff.measure(120 + n % 40, 80 + n % 10, 60 + n % 30, at=T0 + timedelta(minutes=n))
                await until(lambda r=round_: gw.outbox.depth == (r + 1) * 100, what=f"round {round_} in the outbox")
            assert gw.outbox.depth == 500
            broker.start()
            await until(lambda: len(collector.readings()) >= 500, limit_s=30, what="500 readings after the outage")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
        readings = collector.readings()
        ids = [r["reading_id"] for r in readings]
        assert len(ids) == 500
        assert len(set(ids)) == 500
        measured = [datetime.fromisoformat(r["measured_at"]) for r in readings]
        assert measured == [T0 + timedelta(minutes=n) for n in range(500)]
        seqs = [b["seq"] for b in collector.batches()]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
    finally:
        collector.close()


@pytest.mark.slow
async def test_glucose_link_drop_after_120_next_connection_fetches_only_the_rest(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-racp-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    meter = radio.add(GlucoseMeter.create())
    assert isinstance(meter, GlucoseMeter)
    meter.add_records(300, start=T0, every=timedelta(hours=1))
    meter.drop_after = 120
    try:
        # First gateway: slow to retry, so the restart below is what fetches the rest.
        async with running(settings_for(tmp_path, mqtt_url, gw_id, ble_backoff_base_s=30, ble_backoff_cap_s=60)) as gw:
            await until(lambda: len(collector.readings()) >= 120, what="the first 120 records")
            state = gw.outbox.device(meter.address)
            assert state is not None
            assert state.last_sequence == 120
        assert len(meter.racp_requests) == 1
        assert meter.racp_requests[0].operator is RacpOperator.ALL_RECORDS
        # Restart: the last sequence came back from disk.
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(lambda: len(collector.readings()) >= 300, what="all 300 records")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
        assert len(meter.racp_requests) == 2
        assert meter.racp_requests[1].min_sequence == 121
        # Only the rest went over the air: 120 + 180 values, no record twice.
        assert meter.sent_by_uuid[Uuid.GLUCOSE_MEASUREMENT] == 300
        ids = [r["reading_id"] for r in collector.readings()]
        assert len(ids) == len(set(ids)) == 300
    finally:
        collector.close()


async def test_glucose_meter_resending_old_records_is_deduplicated(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-resend-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    meter = radio.add(GlucoseMeter.create())
    assert isinstance(meter, GlucoseMeter)
    meter.add_records(10, start=T0, every=timedelta(hours=1))
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(lambda: len(collector.readings()) >= 10, what="10 records")
            # A buggy meter that answers ">= 11" with records from 6 on.
            meter.resend_before = 5
            meter.add_records(5, start=T0 + timedelta(days=1), every=timedelta(hours=1))
            await until(lambda: len(meter.racp_requests) >= 2 and not meter.advertising, what="second transfer")
            await until(lambda: len(collector.readings()) >= 15 and gw.outbox.depth == 0, what="15 records")
        ids = [r["reading_id"] for r in collector.readings()]
        assert len(ids) == len(set(ids)) == 15
        assert meter.racp_requests[1].min_sequence == 11
    finally:
        collector.close()


async def test_garbage_bytes_are_counted_and_the_next_good_reading_arrives(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-garbage-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings", f"egenmon/v1/gw/{gw_id}/status"])
    cuff = radio.add(BloodPressureCuff.create())
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            cuff.inject_garbage(bytes.fromhex("ff00"))  # reserved flag bits, truncated
            cuff.measure(131, 84, 70, at=T0)
            await until(lambda: len(collector.readings()) >= 1, what="the good reading")

            def status_counts_error() -> bool:
                for payload in collector.payloads("/status"):
                    if payload.startswith(b"{"):
                        doc = json.loads(payload)
                        if any(d["decode_errors"] == 1 for d in doc["devices"]):
                            return True
                return False

            await until(status_counts_error, what="status with the decode error")
            assert gw.outbox.rejected_count() == 1
        [reading] = collector.readings()
        assert reading["values"]["systolic"]["value"] == 131
    finally:
        collector.close()


async def test_unset_device_clock_is_flagged_and_uses_gateway_time(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-clock-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    cuff = radio.add(BloodPressureCuff.create())
    cuff.clock_offset = None  # reset clock: stamps in the year 2000
    cuff.measure(125, 80, 64)
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)):
            await until(lambda: len(collector.readings()) >= 1, what="a reading")
        [reading] = collector.readings()
        assert "device_clock_unset" in reading["flags"]
        measured = datetime.fromisoformat(reading["measured_at"])
        assert abs(measured - datetime.now(UTC)) < timedelta(minutes=1)
        # The gateway set the clock: the next measurement has a trusted timestamp.
        assert cuff.clock_writes >= 1
        assert cuff.clock_offset is not None
    finally:
        collector.close()


async def test_skewed_device_clock_is_corrected_and_flagged(radio: VirtualRadio, tmp_path: Path, mqtt_url: str) -> None:
    gw_id = "gw-clock-2"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    cuff = radio.add(BloodPressureCuff.create())
    cuff.clock_offset = timedelta(hours=1, minutes=3)
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    cuff.measure(125, 80, 64, at=taken)
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)):
            await until(lambda: len(collector.readings()) >= 1, what="a reading")
        [reading] = collector.readings()
        assert "device_clock_corrected" in reading["flags"]
        assert datetime.fromisoformat(reading["measured_at"]) == pytest.approx(taken, abs=timedelta(seconds=3))
    finally:
        collector.close()


@pytest.mark.slow
async def test_full_outbox_raises_the_alarm_and_leaves_readings_on_the_device(
    radio: VirtualRadio, tmp_path: Path, make_mosquitto: Callable[..., LocalMosquitto]
) -> None:
    broker = make_mosquitto()
    gw_id = "gw-full-1"
    collector = Collector(broker.url, [f"egenmon/v1/gw/{gw_id}/readings"])
    cuff = radio.add(BloodPressureCuff.create())
    try:
        async with running(settings_for(tmp_path, broker.url, gw_id, outbox_capacity=3)) as gw:
            await until(gw.publisher.connected.is_set, what="connected")
            broker.stop()
            for n in range(4):
                cuff.measure(120, 80, 60 + n, at=T0 + timedelta(minutes=n))
            await until(lambda: gw.outbox.depth == 4, what="the pushed values, all kept")
            cuff.measure(121, 81, 70, at=T0 + timedelta(minutes=10))
            await until(lambda: json.loads((tmp_path / "status.json").read_text())["outbox_full"], what="alarm")
            connections = cuff.connections
            await asyncio.sleep(1.0)
            assert cuff.connections == connections  # the cuff keeps its new reading
            assert cuff.pending
            broker.start()
            await until(lambda: len(collector.readings()) == 5, what="all five after the drain")
        ids = [r["reading_id"] for r in collector.readings()]
        assert len(set(ids)) == 5
    finally:
        collector.close()
