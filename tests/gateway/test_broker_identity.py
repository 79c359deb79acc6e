"""deploy/mosquitto binds client ids to usernames on the gateway listener (issue 15).

A real Mosquitto runs deploy's mosquitto.conf (paths and ports rewritten only). A gateway
with valid credentials of its own logs in again and again with ingest's predictable client
id and with another gateway's id; neither victim is disconnected and every reading the
broker acknowledged to the victim gateway reaches ingest's persistent session.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.fixtures.deploy_broker import DeployBroker, issue_gateway_password
from tests.fixtures.pki import make_pki
from tests.gateway.helpers import wait_sync

INGEST_CLIENT_ID = "egenmon-ingest-brokerhost"  # ingest's default id is egenmon-ingest-<hostname>


class Client:
    """A paho client that records PUBACKs, messages and every disconnect it suffers."""

    def __init__(self, url_port: int, client_id: str, username: str, password: str, ca: Path | None) -> None:
        self.acked: set[int] = set()
        self.messages: list[bytes] = []
        self.disconnects = 0
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.set() if not reason.is_failure else None
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", url_port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), f"{client_id} could not connect"

    def _on_disconnect(self, *args: Any) -> None:
        with self._lock:
            self.disconnects += 1

    def _on_publish(self, c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            with self._lock:
                self.acked.add(mid)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(bytes(msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def deploy_broker(tmp_path: Path) -> Iterator[tuple[DeployBroker, dict[str, str]]]:
    pki = make_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    creds = {gw: issue_gateway_password(gw, passwd) for gw in ("gw-home-a", "gw-home-b")}
    import subprocess  # noqa: PLC0415

    for service in ("ingest", "platform"):
        creds[service] = f"{service}-test-password"
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), service, creds[service]], check=True)
    broker = DeployBroker(tmp_path / "broker", pki, passwd)
    broker.start()
    try:
        yield broker, creds
    finally:
        broker.stop()


def test_deploy_config_binds_gateway_client_ids_to_usernames(
    deploy_broker: tuple[DeployBroker, dict[str, str]],
) -> None:
    broker, creds = deploy_broker
    ca = broker.pki.ca_file
    ingest = Client(broker.loopback_port, INGEST_CLIENT_ID, "ingest", creds["ingest"], None)
    ingest.client.subscribe("$share/ingest/egenmon/v1/gw/+/readings", qos=1)
    victim = Client(broker.tls_port, "gw-home-b", "gw-home-b", creds["gw-home-b"], ca)
    time.sleep(0.3)  # the SUBACK
    try:
        topic = "egenmon/v1/gw/gw-home-b/readings"
        sent = 0
        # The attacker (a real gateway account) claims ingest's id and the victim's id, and
        # the old "gw-<id>" form, ten times each, while the victim keeps publishing.
        for round_ in range(10):
            for stolen in (INGEST_CLIENT_ID, "gw-home-b", "gw-gw-home-b"):
                attacker = Client(broker.tls_port, stolen, "gw-home-a", creds["gw-home-a"], ca)
                for _ in range(5):
                    victim.client.publish(topic, json.dumps({"round": round_, "n": sent}).encode(), qos=1)
                    sent += 1
                attacker.close()
        wait_sync(lambda: len(victim.acked) == sent, what="every PUBACK at the victim gateway")
        wait_sync(lambda: len(ingest.messages) >= sent, what="every acknowledged reading at ingest")
        assert len(ingest.messages) == sent == 150
        assert sorted(json.loads(m)["n"] for m in ingest.messages) == list(range(sent))
        assert ingest.disconnects == 0
        assert victim.disconnects == 0
        # The broker logged each attacker under its username, never the id it asked for.
        # (connection_messages true: "New client connected from ... as <client id>").
        assert broker.log.count(f" as {INGEST_CLIENT_ID} ") == 1  # ingest itself
        assert broker.log.count(" as gw-home-a ") == 30
    finally:
        victim.close()
        ingest.close()
