"""The broker keeps what it acknowledged across a crash, after its autosave window.

Mosquitto sends PUBACK before it writes anything, and the gateway deletes a reading from
its outbox on that PUBACK, so the deploy config's autosave interval is the window of
acknowledged readings a broker crash can lose (deploy/mosquitto/README.md, "Durability").
Here a real Mosquitto running deploy/mosquitto/mosquitto.conf queues a gateway's readings
for ingest's persistent session while ingest is away, is SIGKILLed 3 s after the last
PUBACK, restarted on its persistence file, and must deliver every one of them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy.localstack import LocalMosquitto
from tests.fixtures.deploy_broker import DEPLOY_MOSQUITTO, DeployBroker, issue_gateway_password
from tests.fixtures.pki import make_pki

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "gw-durable-01"
SHARED = "$share/ingest/egenmon/v1/gw/+/readings"
N = 300
# The promise the docs make: a save at most ~2 s after the PUBACK (autosave_interval 1).
SAVED_WITHIN_S = 3.0


def _ingest_session(port: int, password: str, received: list[bytes]) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="egenmon-ingest-durability", protocol=mqtt.MQTTv5)
    c.username_pw_set("ingest", password)
    ready = threading.Event()
    c.on_connect = lambda cl, u, f, reason, p: (cl.subscribe(SHARED, qos=1), ready.set())
    c.on_message = lambda cl, u, msg: received.append(bytes(msg.payload))
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    assert ready.wait(10)
    time.sleep(0.3)  # SUBACK
    return c


def _publish_acked(port: int, password: str, ca: Path) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=GATEWAY, protocol=mqtt.MQTTv5)
    c.username_pw_set(GATEWAY, password)
    c.tls_set(ca_certs=str(ca))
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"egenmon/v1/gw/{GATEWAY}/readings", f"reading-{i:04d}".encode(), qos=1) for i in range(N)]
    for info in infos:
        info.wait_for_publish(timeout=30)
        assert info.is_published()
    c.disconnect()
    c.loop_stop()


def test_deploy_broker_delivers_acknowledged_readings_after_a_crash(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    gw_password = issue_gateway_password(GATEWAY, passwd)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "ingest", "ingest-pw"], check=True)
    broker = DeployBroker(tmp_path / "broker", pki, passwd)
    broker.start()
    try:
        first: list[bytes] = []
        s = _ingest_session(broker.loopback_port, "ingest-pw", first)
        s.disconnect()  # ingest goes away; the broker queues for its session
        s.loop_stop()
        _publish_acked(broker.tls_port, gw_password, pki.ca_file)
        time.sleep(SAVED_WITHIN_S)
        broker.kill()
        broker.start()
        received: list[bytes] = []
        s = _ingest_session(broker.loopback_port, "ingest-pw", received)
        deadline = time.monotonic() + 15
        while len(set(received)) < N and time.monotonic() < deadline:
            time.sleep(0.1)
        s.disconnect()
        s.loop_stop()
    finally:
        broker.stop()
    assert not first
    assert sorted(set(received)) == [f"reading-{i:04d}".encode() for i in range(N)]


def test_durability_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_broker_durability.py"), "--smoke"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (row,) = [ln for ln in out.stdout.splitlines() if ln.startswith("deploy")]
    assert re.search(r"acked +200 +kept +200 +lost +0 ", row), row


def _autosave_lines(text: str) -> list[str]:
    return re.findall(r"^autosave_\w+ .+$", text, flags=re.M)


def test_local_stack_saves_as_often_as_the_deploy_broker(tmp_path: Path) -> None:
    deploy = _autosave_lines((DEPLOY_MOSQUITTO / "mosquitto.conf").read_text())
    assert deploy == ["autosave_interval 1"]
    local = LocalMosquitto(tmp_path)
    local.write_config()
    assert _autosave_lines(local.config_path.read_text()) == deploy
