"""Enrollment credentials reach the broker: `python -m clinic_api export-broker-credentials`.

A gateway enrolls through the clinic API and gets a password; the export writes the
database's hash into a Mosquitto password file that already holds the service accounts
and a stale entry for the same gateway; a real Mosquitto running deploy's own
mosquitto.conf then lets the gateway in over TLS with its enrollment password, refuses the
stale one, and still lets ingest in. Re-enrollment (rotation) plus export plus SIGHUP
switches the broker to the new password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from clinic_api import broker_credentials, secrets_util
from device_profiles.messages import EnrollmentResponse
from tests.clinic_api.conftest import NURSE, Seed, TestClient
from tests.clinic_api.test_enrollment import _enrol
from tests.fixtures.deploy_broker import DeployBroker
from tests.fixtures.pki import make_pki

ROOT = Path(__file__).resolve().parents[2]
Auth = Callable[[str], dict[str, str]]


def _connect(port: int, username: str, password: str, ca: Path | None) -> int:
    """CONNACK reason code value (0 = accepted), as the gateway's paho client sees it."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    result: list[int] = []
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        result.append(reason.value)
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        c.disconnect()
        c.loop_stop()
    return result[0]


def _export(database_url: str, out: Path) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    r = subprocess.run(
        [sys.executable, "-m", "clinic_api", "export-broker-credentials", "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _enrol_gateway(client: TestClient, code: str) -> EnrollmentResponse:
    r = client.post("/api/v1/gateway-enrollment", json={"code": code})
    assert r.status_code == 200, r.text
    return EnrollmentResponse.model_validate(r.json())


def test_enrolled_gateway_connects_to_mosquitto_with_the_exported_file(
    client: TestClient, auth: Auth, seed: Seed, tmp_path: Path
) -> None:
    pid, code = _enrol(client, auth, seed)
    first = _enrol_gateway(client, code)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "ingest", "ingest-pw"], check=True)
    # What the documented rotation used to leave behind: the broker with another password.
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), first.gateway_id, "stale-pw"], check=True)
    passwd.chmod(0o640)

    out = _export(seed.url, passwd)
    assert "1 gateway accounts, 1 other accounts kept" in out
    lines = passwd.read_text().splitlines()
    assert lines[0].startswith("ingest:$7$")
    assert [ln.split(":")[0] for ln in lines] == ["ingest", first.gateway_id]
    assert oct(passwd.stat().st_mode & 0o777) == "0o640"
    assert first.mqtt_password not in passwd.read_text()

    pki = make_pki(tmp_path / "pki")
    broker = DeployBroker(tmp_path / "broker", pki, passwd)
    broker.start()
    try:
        assert _connect(broker.tls_port, first.gateway_id, first.mqtt_password, pki.ca_file) == 0
        assert _connect(broker.tls_port, first.gateway_id, "stale-pw", pki.ca_file) == 135  # not authorized
        assert _connect(broker.loopback_port, "ingest", "ingest-pw", None) == 0

        # Rotation: a new code, the gateway enrolls again, export, reload.
        r = client.post(f"/api/v1/patients/{pid}/enrollment-code", headers=auth(NURSE))
        assert r.status_code == 201, r.text
        second = _enrol_gateway(client, r.json()["code"])
        assert second.mqtt_password != first.mqtt_password
        _export(seed.url, passwd)
        assert broker.process is not None
        broker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _connect(broker.tls_port, second.gateway_id, second.mqtt_password, pki.ca_file) != 0:
            assert time.monotonic() < deadline, "the broker did not take the rotated password"
            time.sleep(0.2)
        assert _connect(broker.tls_port, first.gateway_id, first.mqtt_password, pki.ca_file) == 135
    finally:
        broker.stop()


def test_merge_drops_gateways_the_database_no_longer_enrolls() -> None:
    h = secrets_util.password_hash("pw")
    existing = f"ingest:{h}\ngw-old-kit:{h}\ngw-unknown:{h}\n\n"
    text, result = broker_credentials.merge(existing, {"gw-new-kit": h}, {"gw-new-kit", "gw-old-kit"})
    assert text.splitlines() == [f"ingest:{h}", f"gw-unknown:{h}", f"gw-new-kit:{h}"]
    assert (result.gateways, result.kept, result.removed) == (1, 2, 1)


@pytest.mark.parametrize(
    "bad_hash",
    ["plain-password", "$6$salt$hash", f"{secrets_util.password_hash('pw')}\ningest:$7$1$AAAA$AAAA"],
)
def test_export_refuses_a_hash_that_is_not_mosquittos(seed: Seed, tmp_path: Path, bad_hash: str) -> None:
    with psycopg.connect(seed.url) as conn:
        conn.execute("INSERT INTO gateway (id, credential_hash) VALUES ('gw-bad-hash', %s)", (bad_hash,))
    out = tmp_path / "passwd"
    out.write_text("ingest:x\n")
    with pytest.raises(broker_credentials.ExportError, match="gw-bad-hash"):
        broker_credentials.export(seed.url, out)
    assert out.read_text() == "ingest:x\n"
