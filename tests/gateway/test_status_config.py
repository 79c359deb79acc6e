"""Status heartbeat, retained config (allowed devices), flags, bonding, metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from deploy.localstack import free_port
from device_profiles.messages import AllowedDevice, FeedbackAck, FeedbackMessage, GatewayConfig, GatewayStatus
from gateway.service import Gateway
from simulators.ble.devices import BloodPressureCuff, Scale
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, running, settings_for, until
from tests.ingest.helpers import publish

AT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


async def test_status_reports_battery_and_flags_reach_the_reading(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-status-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/#"])
    cuff = radio.add(BloodPressureCuff.create())
    cuff.battery_pct = 9
    cuff.measure(150, 95, 88, at=AT, status=0x0004)  # BLS status bit 2: irregular pulse
    port = free_port()
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id, metrics_port=port)) as gw:
            await until(lambda: len(collector.readings()) == 1, what="the reading")

            def latest_status() -> GatewayStatus | None:
                docs = [p for p in collector.payloads("/status") if p.startswith(b"{")]
                return GatewayStatus.model_validate_json(docs[-1]) if docs else None

            await until(lambda: (s := latest_status()) is not None and bool(s.devices), what="status with devices")
            await until(lambda: gw.outbox.depth == 0, what="drained")
            status = latest_status()
            assert status is not None
            assert status.gateway_id == gw_id
            [dev] = status.devices
            assert (dev.address, dev.battery_pct, dev.kind) == (cuff.address, 9, "blood_pressure")
            assert not status.outbox_full
            # Bonding: the cuff requires it and the gateway paired on connect.
            assert cuff.bonded
            async with httpx.AsyncClient() as http:
                body = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
            assert "egenmon_gateway_readings_taken_total 1.0" in body
        [reading] = collector.readings()
        assert {"irregular_pulse", "low_battery"} <= set(reading["flags"])
        assert reading["device"]["battery_pct"] == 9
        # A clean stop leaves "offline" as the retained status.
        assert collector.payloads("/status")[-1] == b"offline"
        assert json.loads((tmp_path / "status.json").read_text())["gateway_id"] == gw_id
    finally:
        collector.close()


async def test_only_devices_allowed_by_the_platform_config_are_read(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-config-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    mine = radio.add(Scale.create("F0:00:00:00:10:01"))
    neighbours = radio.add(Scale.create("F0:00:00:00:10:02"))
    assert isinstance(mine, Scale)
    assert isinstance(neighbours, Scale)
    config = GatewayConfig(allowed_devices=[AllowedDevice(address=mine.address)])
    publish(mqtt_url, f"egenmon/v1/gw/{gw_id}/config", [config.model_dump_json(by_alias=True).encode()], retain=True)
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id, auto_accept=False)) as gw:
            await until(lambda: gw.config.allowed_devices != [], what="config received")
            mine.measure(70.2, at=AT)
            neighbours.measure(95.0, at=AT)
            await until(lambda: len(collector.readings()) == 1, what="my reading")
            await until(lambda: gw.outbox.depth == 0, what="drained")
            assert neighbours.connections == 0
        [reading] = collector.readings()
        assert reading["device"]["address"] == mine.address
        # The config outlives the connection: a restart without the broker still has it.
        offline = settings_for(tmp_path, "mqtt://127.0.0.1:1", gw_id, auto_accept=False)
        again = Gateway(offline)
        try:
            assert again.allowed(mine.address)
            assert not again.allowed(neighbours.address)
        finally:
            again.outbox.close()
    finally:
        publish(mqtt_url, f"egenmon/v1/gw/{gw_id}/config", [b""], retain=True)
        collector.close()


async def test_a_message_to_the_patient_is_shown_and_acknowledged(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    """The real gateway: a feedback message reaches its output file and is acked; a stale one is not shown."""
    gw_id = "gw-feedback-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/feedback/ack"])
    now = datetime.now(UTC)
    fresh = FeedbackMessage(
        id="m-1",
        level="call_1177_or_112",
        message_sv="Ring 1177 för råd, eller 112 om du mår mycket dåligt.",
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )
    stale = fresh.model_copy(update={"id": "m-0", "expires_at": now - timedelta(minutes=1)})
    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(gw.publisher.connected.is_set, what="connected")
            await asyncio.sleep(0.5)  # its SUBSCRIBE is sent on connect; give the SUBACK a moment
            publish(
                mqtt_url,
                f"egenmon/v1/gw/{gw_id}/feedback",
                [m.model_dump_json(by_alias=True).encode() for m in (stale, fresh)],
            )
            await until(lambda: len(collector.payloads("/ack")) == 2, what="two acks")
        acks = {a.id: a.state for a in (FeedbackAck.model_validate_json(p) for p in collector.payloads("/ack"))}
        assert acks == {"m-0": "expired", "m-1": "delivered"}
        shown = FeedbackMessage.model_validate_json((tmp_path / "feedback.json").read_text())
        assert shown.id == "m-1"  # the stale one never reached the output
    finally:
        collector.close()
