"""The real gateway with patient outputs: a reminder from the retained schedule, taken back
by the reading of a virtual cuff, the gateway's own receipt when the platform's is late,
then the platform's receipt; an output that raises is counted and changes nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from device_profiles.messages import FeedbackAck, FeedbackMessage, GatewayConfig, ScheduledMeasurement
from gateway.outputs.reminders import RECEIPT_FALLBACK_SV
from gateway.service import Gateway
from gateway.settings import GatewaySettings
from simulators.ble.devices import BloodPressureCuff
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, settings_for, until
from tests.gateway.test_outputs import Boom, sox_duration
from tests.ingest.helpers import publish


@contextlib.asynccontextmanager
async def started(gw: Gateway) -> AsyncIterator[Gateway]:
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop=stop))
    try:
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


def with_outputs(tmp_path: Path, mqtt_url: str, gw_id: str, **kw: Any) -> GatewaySettings:
    return settings_for(
        tmp_path / "state",
        mqtt_url,
        gw_id,
        outputs="voice,screen",
        voice_wav_path=tmp_path / "voice.wav",
        voice_quiet_hours="",  # the test must not depend on the hour it runs
        screen_port=0,
        outputs_tick_s=0.1,
        **kw,
    )


def kiosk(gw: Gateway) -> str:
    assert gw.channel is not None
    assert gw.channel.screen is not None
    return httpx.get(gw.channel.screen.url, timeout=5).text


def feedback(gw_id: str, msg_id: str, level: str, text: str, kind: str | None) -> bytes:
    now = datetime.now(UTC)
    return (
        FeedbackMessage.model_validate(
            {
                "id": msg_id,
                "level": level,
                "message_sv": text,
                "kind": kind,
                "created_at": now,
                "expires_at": now + timedelta(minutes=10),
            }
        )
        .model_dump_json(by_alias=True)
        .encode()
    )


async def test_reminder_cancelled_by_the_reading_then_local_and_platform_receipts(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-outputs-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings", f"egenmon/v1/gw/{gw_id}/feedback/ack"])
    cuff = radio.add(BloodPressureCuff.create("F0:00:00:00:20:01"))
    assert isinstance(cuff, BloodPressureCuff)
    slot = (datetime.now(ZoneInfo("Europe/Stockholm")) - timedelta(minutes=3)).strftime("%H:%M")
    config = GatewayConfig(schedule=[ScheduledMeasurement(kind="blood_pressure", times_local=[slot])])
    topic = f"egenmon/v1/gw/{gw_id}/config"
    publish(mqtt_url, topic, [config.model_dump_json(by_alias=True).encode()], retain=True)
    settings = with_outputs(
        tmp_path, mqtt_url, gw_id, reminder_grace_s=60, reminder_escalate_s=0, receipt_timeout_s=1.5
    )
    try:
        async with started(Gateway(settings)) as gw:
            ch = gw.channel
            assert ch is not None
            await until(lambda: ch.current is not None and ch.current.level == "reminder", what="the reminder")
            page = await asyncio.to_thread(kiosk, gw)
            assert "Dags att mäta blodtrycket." in page
            assert "Inte gjord ännu" in page
            await until(lambda: ch.hub.outputs[0].spoken >= 1, what="the reminder spoken")  # type: ignore[attr-defined]
            assert sox_duration(tmp_path / "voice.wav") > 0.5

            cuff.measure(142, 88, 71, at=datetime.now(UTC))
            await until(lambda: len(collector.readings()) == 1, what="the reading published")
            # Taken back at once, and no second reminder for the slot.
            await until(lambda: ch.current is None or ch.current.level != "reminder", what="reminder cancelled")
            # No platform here: after receipt_timeout_s the gateway gives its own receipt.
            await until(
                lambda: ch.current is not None and ch.current.message_sv == RECEIPT_FALLBACK_SV, what="fallback"
            )
            page = await asyncio.to_thread(kiosk, gw)
            assert RECEIPT_FALLBACK_SV in page
            assert "Dags att mäta" not in page
            assert "142/88 mmHg, puls 71" in page
            assert "Klar" in page

            # The platform's receipt arrives late: it is shown and acknowledged.
            text = "Blodtrycket 142/88 är mottaget."
            publish(
                mqtt_url, f"egenmon/v1/gw/{gw_id}/feedback", [feedback(gw_id, "r-1", "receipt", text, "blood_pressure")]
            )
            await until(lambda: text in kiosk(gw), what="platform receipt on the kiosk")
            await until(lambda: len(collector.payloads("/ack")) == 1, what="ack")
        assert FeedbackAck.model_validate_json(collector.payloads("/ack")[0]).state == "delivered"
        # The last values outlive a restart (the kiosk is not empty after a reboot).
        assert "blood_pressure" in (tmp_path / "state" / "last_values.json").read_text()
    finally:
        publish(mqtt_url, topic, [b""], retain=True)
        collector.close()


async def test_receipt_in_time_means_no_local_receipt(radio: VirtualRadio, tmp_path: Path, mqtt_url: str) -> None:
    gw_id = "gw-outputs-2"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    cuff = radio.add(BloodPressureCuff.create("F0:00:00:00:20:02"))
    assert isinstance(cuff, BloodPressureCuff)
    settings = with_outputs(tmp_path, mqtt_url, gw_id, receipt_timeout_s=4)
    shown: list[str] = []
    try:
        async with started(Gateway(settings)) as gw:
            ch = gw.channel
            assert ch is not None
            await until(gw.publisher.connected.is_set, what="connected")
            await asyncio.sleep(0.5)
            cuff.measure(131, 82, 64, at=datetime.now(UTC))
            await until(lambda: len(collector.readings()) == 1, what="the reading")
            text = "Blodtrycket 131/82 är mottaget."
            publish(
                mqtt_url, f"egenmon/v1/gw/{gw_id}/feedback", [feedback(gw_id, "r-2", "receipt", text, "blood_pressure")]
            )
            for _ in range(60):  # past the receipt timeout
                if ch.current is not None:
                    shown.append(ch.current.message_sv)
                await asyncio.sleep(0.1)
        assert text in shown
        assert RECEIPT_FALLBACK_SV not in shown
    finally:
        collector.close()


async def test_an_output_that_raises_is_counted_and_reading_goes_on(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-outputs-3"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings", f"egenmon/v1/gw/{gw_id}/feedback/ack"])
    cuff = radio.add(BloodPressureCuff.create("F0:00:00:00:20:03"))
    assert isinstance(cuff, BloodPressureCuff)
    gw = Gateway(with_outputs(tmp_path, mqtt_url, gw_id, receipt_timeout_s=0.5))
    assert gw.channel is not None
    gw.channel.hub.outputs.insert(0, Boom())
    try:
        async with started(gw):
            await until(gw.publisher.connected.is_set, what="connected")
            await asyncio.sleep(0.5)
            publish(
                mqtt_url,
                f"egenmon/v1/gw/{gw_id}/feedback",
                [feedback(gw_id, "c-1", "contact_care", "Ring din vårdcentral.", None)],
            )
            await until(lambda: len(collector.payloads("/ack")) == 1, what="ack despite the broken output")
            for i in range(3):
                cuff.measure(120 + i, 80, 60, at=datetime.now(UTC) - timedelta(minutes=3 - i))
                await until(lambda i=i: len(collector.readings()) == i + 1, what=f"reading {i}")
            await until(lambda: gw.channel is not None and gw.channel.hub.failures["boom"] >= 2, what="counted")
            # The other outputs still worked: the screen shows the gateway's own receipt.
            await until(lambda: RECEIPT_FALLBACK_SV in kiosk(gw), what="screen still updated")
        failures = gw.metrics.registry.get_sample_value("egenmon_gateway_output_failures_total", {"output": "boom"})
        assert failures is not None
        assert failures >= 2
        assert gw.channel.hub.failures.get("voice", 0) == 0
    finally:
        collector.close()


def test_no_outputs_configured_is_the_gateway_as_before(tmp_path: Path) -> None:
    gw = Gateway(settings_for(tmp_path, "mqtt://127.0.0.1:1", "gw-outputs-4"))
    try:
        assert gw.channel is None
        assert gw.outbox.on_added is None
    finally:
        gw.outbox.close()
