"""``egenmon-ingest retire``: a retired worker's session is drained into the database, then ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from typer.testing import CliRunner

from deploy.localstack import LocalMosquitto
from ingest.cli import app
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.ingest.helpers import mqtt_host_port, publish, wait_until
from tests.ingest.processes import assert_exactly_once, reading_stream, seed_gateway, stored_count


def _session_exists(url: str, client_id: str) -> bool:
    """Connect without clean start and ask; leaves the session as it was found, or absent."""
    present: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = lambda c, u, flags, rc, p: present.append(flags.session_present)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    # Expiry 0 on this probe would end a session it found: keep it for an hour instead.
    props.SessionExpiryInterval = 3600
    host, port = mqtt_host_port(url)
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    wait_until(lambda: present, timeout_s=10)
    if present[0]:
        client.disconnect()
    else:  # the probe made one: end it
        end = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        end.SessionExpiryInterval = 0
        client.disconnect(properties=end)
    client.loop_stop()
    return present[0]


def _publish_slowly(url: str, topic: str, payloads: list[bytes]) -> None:
    for payload in payloads:  # 50 messages over ~2.5 s
        publish(url, topic, [payload])
        time.sleep(0.05)


@pytest.mark.slow
def test_retire_stores_what_the_broker_kept_for_a_stopped_worker_and_ends_its_session(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], start_ingest: Callable[..., IngestService]
) -> None:
    broker = make_mosquitto()
    seed = seed_gateway(database_url)
    payloads, readings = reading_stream(400, 4, seed.gateway_id, "SN-retire")
    live = start_ingest(broker_url=broker.url, client_id="ingest-live")
    gone = start_ingest(broker_url=broker.url, client_id="ingest-gone")
    gone.stop()  # taken out of service; its session stays on the broker

    publish(broker.url, seed.topic, payloads[:50])
    wait_until(lambda: live.readings_committed > 0, timeout_s=20)
    time.sleep(1.0)
    # The hazard: Mosquitto went on handing the stopped worker's session its share.
    stranded = 200 - live.readings_committed
    assert stranded > 0, "the broker queued nothing for the stopped worker"
    assert stored_count(database_url) == live.readings_committed

    settings = IngestSettings(database_url=database_url, mqtt_url=broker.url, client_id="ingest-gone", metrics_port=0)
    retiring = IngestService(settings, retiring=True)
    # Readings keep coming while it drains: they must go to the live worker, not to the
    # session being emptied (at most one message may slip in before the UNSUBSCRIBE).
    feed = threading.Thread(target=_publish_slowly, args=(broker.url, seed.topic, payloads[50:]), daemon=True)
    feed.start()
    assert retiring.retire(idle_s=1.0, timeout_s=60)
    assert retiring.session_present is True
    assert stranded <= retiring.readings_committed <= stranded + 4
    feed.join(timeout=30)
    wait_until(lambda: stored_count(database_url) == 400, timeout_s=30)
    assert live.readings_committed + retiring.readings_committed == 400
    with psycopg.connect(database_url) as conn:
        assert_exactly_once(conn, readings)
    # The session is gone: nothing more is queued for it.
    assert not _session_exists(broker.url, "ingest-gone")


def test_retire_command_reports_a_client_id_without_a_session(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], monkeypatch: Any
) -> None:
    broker = make_mosquitto()
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MQTT_URL", broker.url)
    result = CliRunner().invoke(app, ["retire", "ingest-never-was", "--idle-s", "0.5", "--timeout-s", "20"])
    assert result.exit_code == 0, result.output
    assert "ingest-never-was had no session: 0 readings stored; session ended" in result.output
    assert not _session_exists(broker.url, "ingest-never-was")
