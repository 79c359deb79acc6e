"""Provisioning against a small fake clinic API: a real HTTPS server on loopback."""

from __future__ import annotations

import json
import ssl
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from device_profiles.messages import EnrollmentRequest, EnrollmentResponse
from gateway import EnrollmentError
from gateway.cli import app
from gateway.enroll import ENROLLMENT_PATH, request_enrollment, store_identity
from gateway.settings import load_settings
from tests.fixtures.pki import Pki, make_pki

GOOD_CODE = "ENROLL-7F3K-2Q9M"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeClinic(BaseHTTPRequestHandler):
    used: ClassVar[set[str]] = set()
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != ENROLLMENT_PATH:
            self._reply(404, {"detail": "not found"})
            return
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = EnrollmentRequest.model_validate(doc)
        self.requests.append(doc)
        if req.code != GOOD_CODE:
            self._reply(404, {"detail": "unknown enrollment code"})
            return
        if req.code in self.used:
            self._reply(410, {"detail": "enrollment code already used"})
            return
        self.used.add(req.code)
        resp = EnrollmentResponse(
            gateway_id="gw-enrolled-1",
            mqtt_url="mqtts://broker.example.invalid:8883",
            mqtt_username="gw-enrolled-1",
            mqtt_password="s3cret-from-clinic",
            ca_cert_pem=CA_PEM,
        )
        self._reply(200, resp.model_dump(mode="json", by_alias=True))


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[tuple[str, Pki]]:
    pki = make_pki(tmp_path / "pki")
    FakeClinic.used = set()
    FakeClinic.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeClinic)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert_file, pki.key_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", pki
    finally:
        server.shutdown()
        server.server_close()


def test_enroll_writes_identity_readable_only_by_the_gateway(clinic: tuple[str, Pki], tmp_path: Path) -> None:
    url, pki = clinic
    resp = request_enrollment(url, GOOD_CODE, serial="RPI-0001", ca_file=pki.ca_file)
    state = tmp_path / "state"
    path = store_identity(state, resp)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "broker-ca.pem").stat().st_mode) == 0o600
    settings = load_settings(None, state_dir=state)
    assert settings.gateway_id == "gw-enrolled-1"
    assert settings.mqtt_password == "s3cret-from-clinic"
    assert settings.mqtt_ca_file == state / "broker-ca.pem"
    assert FakeClinic.requests == [{"code": GOOD_CODE, "serial": "RPI-0001"}]


def test_used_or_unknown_codes_and_untrusted_servers_are_refused(clinic: tuple[str, Pki]) -> None:
    url, pki = clinic
    request_enrollment(url, GOOD_CODE, ca_file=pki.ca_file)
    with pytest.raises(EnrollmentError) as used:
        request_enrollment(url, GOOD_CODE, ca_file=pki.ca_file)
    assert used.value.status_code == 410
    with pytest.raises(EnrollmentError) as unknown:
        request_enrollment(url, "NOPE-NOPE-NOPE", ca_file=pki.ca_file)
    assert unknown.value.status_code == 404
    # Without the clinic's CA the certificate is not trusted: no credentials leave the server.
    with pytest.raises(EnrollmentError, match="unreachable"):
        request_enrollment(url, GOOD_CODE)


def test_enroll_command(clinic: tuple[str, Pki], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, pki = clinic
    state = tmp_path / "cli-state"
    monkeypatch.setenv("EGENMON_GATEWAY_STATE_DIR", str(state))
    monkeypatch.setenv("EGENMON_GATEWAY_CLINIC_CA_FILE", str(pki.ca_file))
    result = CliRunner().invoke(app, ["enroll", GOOD_CODE, "--clinic-url", url])
    assert result.exit_code == 0, result.output
    assert "gw-enrolled-1" in result.output
    assert json.loads((state / "identity.json").read_text())["gateway_id"] == "gw-enrolled-1"
    again = CliRunner().invoke(app, ["enroll", GOOD_CODE, "--clinic-url", url])
    assert again.exit_code == 1
    assert "already used" in again.output
