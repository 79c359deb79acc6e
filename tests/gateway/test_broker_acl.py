"""deploy/mosquitto: TLS, per-gateway passwords and the ACL, on a real Mosquitto.

The test builds a throwaway CA, issues passwords with deploy's script (mosquitto_passwd),
and loads deploy's ACL file unchanged."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.localstack import LocalMosquitto, free_port
from simulators.ble.devices import BloodPressureCuff
from simulators.ble.radio import VirtualRadio
from tests.fixtures.pki import Pki, make_pki
from tests.gateway.helpers import Collector, running, settings_for, until, wait_sync

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"


def issue(gateway_id: str, passwd: Path) -> str:
    out = subprocess.run(
        ["sh", str(DEPLOY / "issue-gateway-credentials.sh"), gateway_id, str(passwd)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def tls_client(port: int, pki: Pki, username: str, password: str) -> tuple[mqtt.Client, dict[str, Any]]:
    seen: dict[str, Any] = {"acks": {}, "subacks": [], "connected": threading.Event(), "reason": None}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{username}-{port}", protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=str(pki.ca_file))

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        seen["reason"] = reason
        seen["connected"].set()

    client.on_connect = on_connect
    client.on_publish = lambda c, u, mid, reason, props: seen["acks"].__setitem__(mid, reason)
    client.on_subscribe = lambda c, u, mid, reasons, props: seen["subacks"].extend(reasons)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert seen["connected"].wait(10)
    return client, seen


@pytest.fixture
def secured_broker(
    tmp_path: Path, make_mosquitto: Callable[..., LocalMosquitto]
) -> tuple[LocalMosquitto, int, Pki, dict[str, str]]:
    pki = make_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    creds = {gw: issue(gw, passwd) for gw in ("gw-home-a", "gw-home-b")}
    for service in ("ingest", "platform"):
        creds[service] = f"{service}-test-password"
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), service, creds[service]], check=True)
    tls_port = free_port()
    broker = make_mosquitto(
        anonymous=False,
        extra_config=[
            f"password_file {passwd}",
            f"acl_file {DEPLOY / 'acl'}",
            f"listener {tls_port} 127.0.0.1",
            f"cafile {pki.ca_file}",
            f"certfile {pki.cert_file}",
            f"keyfile {pki.key_file}",
            "tls_version tlsv1.2",
        ],
    )
    wait_sync(lambda: _port_open(tls_port), what="TLS listener")
    return broker, tls_port, pki, creds


def _port_open(port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_gateway_publishes_over_tls_and_cannot_touch_another_gateways_topics(
    radio: VirtualRadio, tmp_path: Path, secured_broker: tuple[LocalMosquitto, int, Pki, dict[str, str]]
) -> None:
    _broker, port, pki, creds = secured_broker
    url = f"mqtts://127.0.0.1:{port}"
    ingest = Collector(
        url,
        ["$share/ingest/egenmon/v1/gw/+/readings"],
        username="ingest",
        password=creds["ingest"],
        ca_file=str(pki.ca_file),
    )
    try:
        # The real gateway, with TLS (CA verified) and its own credentials, gets through.
        cuff = radio.add(BloodPressureCuff.create())
        cuff.measure(133, 85, 71)
        settings = settings_for(
            tmp_path / "gw",
            url,
            "gw-home-a",
            mqtt_username="gw-home-a",
            mqtt_password=creds["gw-home-a"],
            mqtt_ca_file=pki.ca_file,
        )
        async with running(settings) as gw:
            await until(lambda: len(ingest.readings()) == 1, what="gateway A's reading at ingest")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
        # Gateway A tries to publish as gateway B and to read B's config.
        client, seen = tls_client(port, pki, "gw-home-a", creds["gw-home-a"])
        try:
            info = client.publish("egenmon/v1/gw/gw-home-b/readings", b'{"schema": 1}', qos=1)
            wait_sync(lambda: info.mid in seen["acks"], what="PUBACK")
            assert seen["acks"][info.mid].value == 0x87  # Not authorized
            # Its own status topic is fine.
            ok = client.publish("egenmon/v1/gw/gw-home-a/status", b"offline", qos=1, retain=True)
            wait_sync(lambda: ok.mid in seen["acks"], what="PUBACK")
            assert not seen["acks"][ok.mid].is_failure
        finally:
            client.disconnect()
            client.loop_stop()
        assert len(ingest.readings()) == 1
        assert all(t.endswith("gw-home-a/readings") for t, _p, _r in ingest.messages)
        # The platform publishes B's retained config: B gets it, A (subscribed to it) never.
        config_b = "egenmon/v1/gw/gw-home-b/config"
        platform, pseen = tls_client(port, pki, "platform", creds["platform"])
        try:
            info = platform.publish(config_b, b'{"schema": 1}', qos=1, retain=True)
            wait_sync(lambda: info.mid in pseen["acks"], what="PUBACK")
            assert not pseen["acks"][info.mid].is_failure
        finally:
            platform.disconnect()
            platform.loop_stop()
        ca = str(pki.ca_file)
        spy = Collector(url, [config_b], username="gw-home-a", password=creds["gw-home-a"], ca_file=ca)
        owner = Collector(url, [config_b], username="gw-home-b", password=creds["gw-home-b"], ca_file=ca)
        try:
            wait_sync(lambda: len(owner.payloads("/config")) == 1, what="B's config at B")
            assert spy.payloads("/config") == []
        finally:
            spy.close()
            owner.close()
    finally:
        ingest.close()


def test_wrong_password_is_refused(secured_broker: tuple[LocalMosquitto, int, Pki, dict[str, str]]) -> None:
    _broker, port, pki, _creds = secured_broker
    client, seen = tls_client(port, pki, "gw-home-a", "not-the-password")
    try:
        assert seen["reason"].is_failure
    finally:
        client.loop_stop()


async def test_gateway_with_a_client_certificate_is_confined_by_the_same_acl(
    radio: VirtualRadio, tmp_path: Path, make_mosquitto: Callable[..., LocalMosquitto]
) -> None:
    """The alternative credential of deploy/mosquitto: certificate CN = gateway id."""
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.client_cert("gw-cert-a", tmp_path / "pki")
    tls_port = free_port()
    make_mosquitto(
        anonymous=False,
        extra_config=[
            f"acl_file {DEPLOY / 'acl'}",
            f"listener {tls_port} 127.0.0.1",
            f"cafile {pki.ca_file}",
            f"certfile {pki.cert_file}",
            f"keyfile {pki.key_file}",
            "require_certificate true",
            "use_identity_as_username true",
        ],
    )
    wait_sync(lambda: _port_open(tls_port), what="TLS listener")
    url = f"mqtts://127.0.0.1:{tls_port}"
    radio.add(BloodPressureCuff.create()).measure(128, 83, 66)  # type: ignore[attr-defined]
    settings = settings_for(
        tmp_path / "gw", url, "gw-cert-a", mqtt_ca_file=pki.ca_file, mqtt_cert_file=cert, mqtt_key_file=key
    )
    async with running(settings) as gw:
        await until(lambda: gw.outbox.depth == 0 and gw.publisher.published_batches == 1, what="PUBACK over mTLS")
    # Same certificate, another gateway's topic: refused by the ACL.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-cert", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key))
    acks: dict[int, Any] = {}
    client.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason)
    client.connect("127.0.0.1", tls_port)
    client.loop_start()
    try:
        info = client.publish("egenmon/v1/gw/gw-home-b/readings", b"{}", qos=1)
        wait_sync(lambda: info.mid in acks, what="PUBACK")
        assert acks[info.mid].value == 0x87
    finally:
        client.disconnect()
        client.loop_stop()


def test_platform_account_sends_configs_and_messages_and_gateways_see_only_their_own(
    db: Any, database_url: str, secured_broker: tuple[LocalMosquitto, int, Pki, dict[str, str]]
) -> None:
    """Alerting's real publisher as ``platform``: config and feedback to B, B's ack back; A is refused."""
    from alerting.feedback import FeedbackPublisher  # noqa: PLC0415
    from alerting.settings import AlertingSettings  # noqa: PLC0415
    from tests.ingest.helpers import seed_patient  # noqa: PLC0415

    _broker, port, pki, creds = secured_broker
    url = f"mqtts://127.0.0.1:{port}"
    ca = str(pki.ca_file)
    seed = seed_patient(db, gateway_id="gw-home-b")
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions) VALUES (%s, 1, '{hypertension}')", (seed.patient_id,)
    )
    mid = db.execute(
        "INSERT INTO patient_message (patient_id, gateway_id, level, message_sv, expires_at) "
        "VALUES (%s, 'gw-home-b', 'reminder', 'Dags att mäta blodtrycket.', now() + interval '1 hour') "
        "RETURNING id::text",
        (seed.patient_id,),
    ).fetchone()[0]
    b_topics = ["egenmon/v1/gw/gw-home-b/config", "egenmon/v1/gw/gw-home-b/feedback"]
    owner = Collector(url, b_topics, username="gw-home-b", password=creds["gw-home-b"], ca_file=ca)
    spy = Collector(
        url,
        [*b_topics, "egenmon/v1/gw/gw-home-b/feedback/ack"],
        username="gw-home-a",
        password=creds["gw-home-a"],
        ca_file=ca,
    )
    platform = FeedbackPublisher(
        AlertingSettings(
            database_url=database_url,
            mqtt_url=url,
            mqtt_username="platform",
            mqtt_password=creds["platform"],  # type: ignore[arg-type]
            mqtt_ca_file=pki.ca_file,
            feedback_poll_s=0.1,
            config_poll_s=0.2,
        )
    )
    worker = threading.Thread(target=platform.run, daemon=True)
    worker.start()
    try:
        wait_sync(lambda: len(owner.payloads("/config")) == 1, what="B's config at B")
        wait_sync(lambda: len(owner.payloads("/feedback")) == 1, what="B's message at B")
        assert mid.encode() in owner.payloads("/feedback")[0]
        # A may not forge B's acknowledgement, nor write config or messages, even its own.
        a, aseen = tls_client(port, pki, "gw-home-a", creds["gw-home-a"])
        try:
            ack = f'{{"schema": 1, "id": "{mid}", "state": "seen", "at": "2026-12-03T10:00:00+00:00"}}'.encode()
            infos = [
                a.publish("egenmon/v1/gw/gw-home-b/feedback/ack", ack, qos=1),
                a.publish("egenmon/v1/gw/gw-home-a/config", b'{"schema": 1}', qos=1, retain=True),
                a.publish("egenmon/v1/gw/gw-home-a/feedback", b"{}", qos=1),
            ]
            wait_sync(lambda: all(i.mid in aseen["acks"] for i in infos), what="PUBACKs")
            assert [aseen["acks"][i.mid].value for i in infos] == [0x87, 0x87, 0x87]
        finally:
            a.disconnect()
            a.loop_stop()
        # B's own acknowledgement is recorded.
        b, bseen = tls_client(port, pki, "gw-home-b", creds["gw-home-b"])
        try:
            info = b.publish("egenmon/v1/gw/gw-home-b/feedback/ack", ack.replace(b"seen", b"delivered"), qos=1)
            wait_sync(lambda: info.mid in bseen["acks"], what="PUBACK")
            assert not bseen["acks"][info.mid].is_failure
        finally:
            b.disconnect()
            b.loop_stop()
        wait_sync(
            lambda: (
                db.execute("SELECT delivered_at FROM patient_message WHERE id::text = %s", (mid,)).fetchone() != (None,)
            ),
            what="ack recorded",
        )
        assert db.execute("SELECT seen_at FROM patient_message WHERE id::text = %s", (mid,)).fetchone() == (None,)
        assert spy.messages == []
    finally:
        platform.stop()
        worker.join(timeout=10)
        owner.close()
        spy.close()
