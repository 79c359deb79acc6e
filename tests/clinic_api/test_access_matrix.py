"""Every endpoint x every role, including cross-unit denial, and an audit row for every
successful read or change of patient data."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.clinic_api.conftest import (
    ADMIN,
    AUDITOR,
    NURSE,
    NURSE_SYD,
    PHYSICIAN,
    Seed,
    TestClient,
    token_headers,
)

NORD_PATIENT = "P-DEMO0001"  # MON-NORD: heart failure + hypertension, two open alerts
ROLES = {"nurse": NURSE, "physician": PHYSICIAN, "nurse_other_unit": NURSE_SYD, "admin": ADMIN, "auditor": AUDITOR}

CLINICAL = {"nurse": 200, "physician": 200, "nurse_other_unit": 404, "admin": 403, "auditor": 403, "anonymous": 401}
CLINICAL_CREATE = {**CLINICAL, "nurse": 201, "physician": 201}
# (method, path, body, expected by role, writes a patient audit row)
CASES: list[tuple[str, str, dict[str, Any] | None, dict[str, int], bool]] = [
    ("GET", "/api/v1/patients/{pid}", None, CLINICAL, True),
    ("GET", "/api/v1/patients/{pid}/observations?component=weight", None, CLINICAL, True),
    ("GET", "/api/v1/patients/{pid}/summary", None, CLINICAL, True),
    ("GET", "/api/v1/patients/{pid}/care-plans", None, CLINICAL, True),
    (
        "POST",
        "/api/v1/patients/{pid}/care-plans",
        {"conditions": ["heart_failure"], "dry_weight_kg": 81},
        CLINICAL_CREATE,
        True,
    ),
    ("GET", "/api/v1/patients/{pid}/fhir", None, CLINICAL, True),
    # Enrolment is admin desk work too (the admin of the patient's unit).
    ("POST", "/api/v1/patients/{pid}/enrollment-code", None, {**CLINICAL_CREATE, "admin": 201}, True),
    ("GET", "/api/v1/alerts/{aid}", None, CLINICAL, True),
    ("POST", "/api/v1/alerts/{aid}/comment", {"comment": "Ringt patienten"}, CLINICAL, True),
    ("POST", "/api/v1/alerts/{aid}/escalate", {"role": "physician", "reason": "Bedömning"}, CLINICAL, True),
    ("GET", "/api/v1/alerts", None, {**CLINICAL, "nurse_other_unit": 200}, False),
    ("GET", "/api/v1/patients", None, {**CLINICAL, "nurse_other_unit": 200}, False),
    ("GET", "/api/v1/gateways", None, {**CLINICAL, "nurse_other_unit": 200, "admin": 200}, False),
    ("GET", "/api/v1/gateways/gw-demo-001", None, {**CLINICAL, "admin": 200}, False),
    ("GET", "/api/v1/audit", None, dict.fromkeys(CLINICAL, 403) | {"auditor": 200, "anonymous": 401}, False),
    ("GET", "/api/v1/units", None, dict.fromkeys(CLINICAL, 403) | {"admin": 200, "anonymous": 401}, False),
    ("GET", "/api/v1/staff", None, dict.fromkeys(CLINICAL, 403) | {"admin": 200, "anonymous": 401}, False),
    ("GET", "/api/v1/me", None, dict.fromkeys(CLINICAL, 200) | {"anonymous": 401}, False),
    ("GET", "/api/v1/units/{uid}/alert-burden", None, CLINICAL, False),
]


@pytest.fixture(scope="module")
def headers(shared_client: TestClient) -> dict[str, dict[str, str]]:
    out = {role: token_headers(shared_client, subject) for role, subject in ROLES.items()}
    out["anonymous"] = {}
    return out


def _audit_count(seed: Seed, patient: Any) -> tuple[int, int]:
    """(granted, refused) audit rows naming the patient."""
    with psycopg.connect(seed.url) as conn:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE action NOT LIKE '%%\\_refused'),
                      count(*) FILTER (WHERE action LIKE '%%\\_refused')
               FROM audit_log WHERE patient_id = %s""",
            (patient,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "audited"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_matrix(
    shared_client: TestClient,
    shared_seed: Seed,
    headers: dict[str, dict[str, str]],
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: dict[str, int],
    audited: bool,
) -> None:
    pid = shared_seed.patients[NORD_PATIENT]
    url = path.format(pid=pid, aid=shared_seed.alert_id(NORD_PATIENT), uid=shared_seed.units["MON-NORD"])
    before = _audit_count(shared_seed, pid)
    r = shared_client.request(method, url, json=body, headers=headers[role])
    assert r.status_code == expected[role], r.text
    after = _audit_count(shared_seed, pid)
    if audited and r.status_code < 300:
        assert after == (before[0] + 1, before[1]), "a read or change of patient data must write one audit row"
    elif audited and r.status_code in (403, 404):
        # Refused (another unit, or no clinical role): one *_refused row naming the patient.
        assert after == (before[0], before[1] + 1), "a refused attempt must write one refusal row"
    elif audited:
        assert after == before


@pytest.mark.parametrize(("role", "visible"), [("nurse", 3), ("physician", 4), ("nurse_other_unit", 1)])
def test_lists_show_only_own_units(
    shared_client: TestClient, headers: dict[str, dict[str, str]], shared_seed: Seed, role: str, visible: int
) -> None:
    patients = shared_client.get("/api/v1/patients", headers=headers[role]).json()
    assert len(patients) == visible
    alerts = shared_client.get(
        "/api/v1/alerts", headers=headers[role], params={"status": ["open", "acknowledged"]}
    ).json()
    assert {a["patient_id"] for a in alerts} <= {p["id"] for p in patients}
    gateways = shared_client.get("/api/v1/gateways", headers=headers[role]).json()
    assert {g["patient_id"] for g in gateways} <= {p["id"] for p in patients}


def test_admin_gateway_list_has_no_patient_data(shared_client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    rows = shared_client.get("/api/v1/gateways", headers=headers["admin"]).json()
    assert len(rows) == 4
    for row in rows:
        assert "pseudonym" not in row
        assert "patient_id" not in row
        assert row["assigned"] is True


def test_admin_sees_no_clinical_pages(shared_client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    assert shared_client.get("/ui/alerts", headers=headers["admin"]).status_code == 403
    assert shared_client.get("/ui/gateways", headers=headers["admin"]).status_code == 200
