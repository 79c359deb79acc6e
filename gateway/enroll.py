"""Provisioning: exchange a one-time enrollment code for the gateway's identity.

``POST {clinic_url}/api/v1/gateway-enrollment`` with an EnrollmentRequest (HTTPS, httpx)
returns an EnrollmentResponse: gateway id, broker URL, broker credentials and the broker's
CA certificate. They are written to the state directory, readable by the gateway's user
only (0600), where :func:`gateway.settings.load_settings` picks them up.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from pathlib import Path

import httpx
from pydantic import ValidationError

from device_profiles.messages import EnrollmentRequest, EnrollmentResponse
from gateway.errors import EnrollmentError

logger = logging.getLogger(__name__)

ENROLLMENT_PATH = "/api/v1/gateway-enrollment"
CA_FILE = "broker-ca.pem"


def request_enrollment(
    clinic_url: str,
    code: str,
    *,
    serial: str | None = None,
    ca_file: Path | None = None,
    timeout_s: float = 20.0,
) -> EnrollmentResponse:
    """The clinic's answer; ``ca_file`` pins the clinic API's CA (else the system's CAs)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    body = EnrollmentRequest(code=code, serial=serial).model_dump(exclude_none=True)
    url = clinic_url.rstrip("/") + ENROLLMENT_PATH
    try:
        resp = httpx.post(url, json=body, timeout=timeout_s, verify=verify)
    except httpx.HTTPError as err:
        raise EnrollmentError(f"clinic API unreachable: {err}") from err
    if resp.status_code != 200:
        try:
            detail = str(resp.json().get("detail", ""))
        except ValueError:
            detail = resp.text[:200]
        raise EnrollmentError(detail or "enrollment refused", status_code=resp.status_code)
    try:
        return EnrollmentResponse.model_validate_json(resp.content)
    except ValidationError as err:
        raise EnrollmentError(f"malformed enrollment response: {err.error_count()} errors") from err


def _write_private(path: Path, text: str) -> None:
    # Create with 0600 from the start: the password never exists world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def store_identity(state_dir: Path, resp: EnrollmentResponse) -> Path:
    """Write identity.json (and the broker CA) to the state directory; returns its path."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident: dict[str, str] = {
        "gateway_id": resp.gateway_id,
        "mqtt_url": resp.mqtt_url,
        "mqtt_username": resp.mqtt_username,
        "mqtt_password": resp.mqtt_password,
    }
    if resp.ca_cert_pem:
        ca = state_dir / CA_FILE
        _write_private(ca, resp.ca_cert_pem)
        ident["mqtt_ca_file"] = str(ca)
    if resp.config_url:
        ident["config_url"] = str(resp.config_url)
    path = state_dir / "identity.json"
    _write_private(path, json.dumps(ident, indent=2))
    logger.info("enrolled gateway_id=%s", resp.gateway_id)
    return path
