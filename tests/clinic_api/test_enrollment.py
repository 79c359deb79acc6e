"""Enrollment: patient with a test personnummer, gateway kit, one-time code, and the gateway's
code-for-credentials exchange exactly per device_profiles.messages."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from clinic_api import secrets_util
from clinic_api.models import check_personnummer
from device_profiles.messages import EnrollmentResponse
from tests.clinic_api.conftest import ADMIN, NURSE, NURSE_SYD, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
TEST_PNR = "19791124-9808"  # Skatteverket test range (birth number 980-999), valid check digit


@pytest.mark.parametrize("pnr", ["19121212-1212", "191212121212", "19811218-9876", TEST_PNR])
def test_test_personnummer_accepted(pnr: str) -> None:
    assert check_personnummer(pnr).count("-") == 1


@pytest.mark.parametrize("pnr", ["19121212-1213", "19121312-1212", "1912121212", "abcdefgh-1234", "19121232-1212"])
def test_bad_personnummer_rejected(pnr: str) -> None:
    with pytest.raises(ValueError, match="personnummer"):
        check_personnummer(pnr)


def _enrol(client: TestClient, auth: Auth, seed: Seed) -> tuple[str, str]:
    admin = client.post("/api/v1/gateways", headers=auth(ADMIN), json={"id": "gw-kit-777", "serial": "SN-777"})
    assert admin.status_code == 201
    r = client.post(
        "/api/v1/patients",
        headers=auth(NURSE),
        json={
            "personnummer": TEST_PNR,
            "display_name": "Test Testsson",
            "unit_id": str(seed.units["MON-NORD"]),
            "care_plan": {"conditions": ["hypertension"], "schedule": {"blood_pressure": {"per_day": 2}}},
        },
    )
    assert r.status_code == 201, r.text
    patient = r.json()
    assert patient["pseudonym"].startswith("P-")
    assert patient["birth_year"] == 1979
    assert "personnummer" not in patient
    assert patient["care_plan"]["version"] == 1
    pid = patient["id"]
    no_kit = client.post(f"/api/v1/patients/{pid}/enrollment-code", headers=auth(NURSE))
    assert no_kit.status_code == 409
    r = client.post(f"/api/v1/patients/{pid}/gateway", headers=auth(NURSE), json={"gateway_id": "gw-kit-777"})
    assert r.status_code == 201
    r = client.post(f"/api/v1/patients/{pid}/enrollment-code", headers=auth(NURSE))
    assert r.status_code == 201
    assert r.json()["gateway_id"] == "gw-kit-777"
    return pid, r.json()["code"]


def test_full_enrollment_and_single_use_exchange(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid, code = _enrol(client, auth, seed)
    with psycopg.connect(seed.url) as conn:
        stored = conn.execute("SELECT code_hash FROM enrollment_code").fetchall()
        assert all(code not in row[0] and secrets_util.normalise_code(code) not in row[0] for row in stored)
        identity = conn.execute("SELECT personnummer FROM patient_identity WHERE patient_id = %s", (pid,)).fetchone()
        assert identity == (TEST_PNR,)
    r = client.post("/api/v1/gateway-enrollment", json={"code": code.lower(), "serial": "SN-777"})
    assert r.status_code == 200, r.text
    resp = EnrollmentResponse.model_validate(r.json())
    assert resp.gateway_id == "gw-kit-777"
    assert resp.mqtt_username == "gw-kit-777"
    assert resp.mqtt_url == "mqtt://127.0.0.1:1883"
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT credential_hash, enrolled_at FROM gateway WHERE id = 'gw-kit-777'").fetchone()
        audit = conn.execute("SELECT action FROM audit_log WHERE patient_id = %s ORDER BY id", (pid,)).fetchall()
    assert row is not None
    assert row[1] is not None
    assert resp.mqtt_password not in row[0]
    assert secrets_util.verify_password(resp.mqtt_password, row[0])
    assert not secrets_util.verify_password("wrong", row[0])
    assert [a[0] for a in audit] == ["create", "assign_gateway", "issue_enrollment_code", "gateway_enrolled"]
    again = client.post("/api/v1/gateway-enrollment", json={"code": code})
    assert again.status_code == 410
    assert "already used" in again.json()["detail"]


def test_unknown_expired_and_malformed_codes(client: TestClient, auth: Auth, seed: Seed) -> None:
    _, code = _enrol(client, auth, seed)
    assert client.post("/api/v1/gateway-enrollment", json={"code": "AAAA-BBBB-CCCC-DDDD"}).status_code == 404
    assert client.post("/api/v1/gateway-enrollment", json={"code": "short"}).status_code == 422
    assert client.post("/api/v1/gateway-enrollment", json={"code": code, "extra": 1}).status_code == 422
    with psycopg.connect(seed.url) as conn:
        conn.execute("UPDATE enrollment_code SET expires_at = now() - interval '1 minute'")
    r = client.post("/api/v1/gateway-enrollment", json={"code": code})
    assert r.status_code == 410
    assert "expired" in r.json()["detail"]


def test_enrollment_conflicts_and_unit_checks(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid, _ = _enrol(client, auth, seed)
    body = {"personnummer": TEST_PNR, "display_name": "Dubblett", "unit_id": str(seed.units["MON-NORD"])}
    assert client.post("/api/v1/patients", headers=auth(NURSE), json=body).status_code == 409
    other = {**body, "personnummer": "19121212-1212", "unit_id": str(seed.units["MON-NORD"])}
    assert client.post("/api/v1/patients", headers=auth(NURSE_SYD), json=other).status_code == 403
    bad = {**body, "personnummer": "19121212-1213"}
    r = client.post("/api/v1/patients", headers=auth(NURSE), json=bad)
    assert r.status_code == 422
    assert "check digit" in r.text
    assert "19121212-1213" not in r.text  # the input is never echoed back
    # The kit already serves a patient: assigning it to another one conflicts.
    other_pid = seed.patients["P-DEMO0003"]
    r = client.post(f"/api/v1/patients/{other_pid}/gateway", headers=auth(NURSE), json={"gateway_id": "gw-kit-777"})
    assert r.status_code == 409
    r = client.post(f"/api/v1/patients/{pid}/gateway", headers=auth(NURSE), json={"gateway_id": "gw-unknown"})
    assert r.status_code == 404
    assert client.post("/api/v1/gateways", headers=auth(ADMIN), json={"id": "gw-kit-777"}).status_code == 409
    assert client.post("/api/v1/gateways", headers=auth(NURSE), json={"id": "gw-kit-778"}).status_code == 403
    # Service accounts on the broker are not gateway ids (deploy/mosquitto).
    for reserved in ("ingest", "platform", "egenmon-ingest-host1", "egenmon-clinic"):
        r = client.post("/api/v1/gateways", headers=auth(ADMIN), json={"id": reserved})
        assert r.status_code == 422, reserved
        assert "reserved for the platform's services" in r.text
    assert client.post("/api/v1/gateways", headers=auth(ADMIN), json={"id": "gw-egenmon-1"}).status_code == 201
