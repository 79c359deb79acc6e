"""Every JSON endpoint under /api/v1 names a response model, and real answers fit them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from clinic_api import schemas
from clinic_api.schemas import AlertDetail, AlertListItem, PatientListItem
from tests.clinic_api.conftest import ADMIN, AUDITOR, NURSE, PHYSICIAN, Seed, TestClient, token_headers

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


def _schema_ref(op: dict[str, object]) -> str:
    content = op["responses"]["200"]["content"]["application/json"]["schema"]  # type: ignore[index]
    return str(content.get("items", content).get("$ref"))  # type: ignore[union-attr]


def test_openapi_shows_the_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert _schema_ref(paths["/api/v1/alerts"]["get"]) == "#/components/schemas/AlertListItem"
    assert _schema_ref(paths["/api/v1/alerts/{alert_id}"]["get"]) == "#/components/schemas/AlertDetail"
    assert _schema_ref(paths["/api/v1/patients"]["get"]) == "#/components/schemas/PatientListItem"
    fields = doc["components"]["schemas"]["AlertDetail"]["properties"]
    assert {"severity", "evidence", "events", "route"} <= set(fields)


def test_real_answers_fit_the_models(client: TestClient, auth: Auth) -> None:
    # The queue bypasses FastAPI's serialisation (jsonresp), so check it against its model here.
    queue = client.get("/api/v1/alerts", headers=auth(PHYSICIAN))
    assert queue.status_code == 200
    rows = [AlertListItem.model_validate(r) for r in queue.json()]
    assert rows, "the demo seed has open alerts"
    one = client.get(f"/api/v1/alerts/{rows[0].id}", headers=auth(PHYSICIAN))
    assert one.status_code == 200
    detail = AlertDetail.model_validate(one.json())
    assert detail.id == rows[0].id
    assert detail.events
    # The row's own columns and the joined patient fields are all in the answer.
    assert {"acknowledged_by", "resolved_by", "fire_count", "pseudonym", "unit_id"} <= set(one.json())
    patients = client.get("/api/v1/patients", headers=auth(PHYSICIAN))
    assert patients.status_code == 200
    assert [PatientListItem.model_validate(p).pseudonym for p in patients.json()]


# Answers that are not JSON, so have no JSON schema: (method, path) -> media type.
BINARY = {("get", "/api/v1/patients/{patient_id}/letter.pdf"): "application/pdf"}
METHODS = ("get", "post", "put", "patch", "delete")


def _component(doc: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The component a 2xx schema names (itself or, for a list, its items), if any."""
    ref = (
        schema.get("$ref") or (schema.get("items") or {}).get("$ref") if schema.get("type") in (None, "array") else None
    )
    if not isinstance(ref, str) or not ref.startswith("#/components/schemas/"):
        return None
    name = ref.rsplit("/", 1)[1]
    return name if name in doc["components"]["schemas"] else None


def test_every_api_route_documents_its_answer(client: TestClient) -> None:
    doc = client.app.openapi()  # type: ignore[attr-defined]
    undocumented: list[str] = []
    seen_binary: set[tuple[str, str]] = set()
    n = 0
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method in METHODS:
            if method not in ops:
                continue
            n += 1
            ok = {code: r for code, r in ops[method]["responses"].items() if code.startswith("2")}
            assert ok, f"{method.upper()} {path} has no 2xx answer"
            if (method, path) in BINARY:
                seen_binary.add((method, path))
                assert all(BINARY[(method, path)] in r.get("content", {}) for r in ok.values()), (method, path)
                continue
            for code, r in ok.items():
                schema = r.get("content", {}).get("application/json", {}).get("schema", {})
                if _component(doc, schema) is None:
                    undocumented.append(f"{method.upper()} {path} {code}: {schema}")
    assert not undocumented, "\n".join(undocumented)
    assert seen_binary == set(BINARY), "a listed binary route no longer exists"
    assert n >= 40  # every router's routes were walked, not an empty document


def test_every_answer_fits_its_model(fresh_client: TestClient, fresh_seed: Seed) -> None:
    """One real answer of each documented endpoint validates against the model it names."""
    c, seed = fresh_client, fresh_seed
    doc = c.app.openapi()  # type: ignore[attr-defined]
    phys, admin, auditor = (token_headers(c, s) for s in (PHYSICIAN, ADMIN, AUDITOR))
    pseudonym = sorted(seed.patients)[0]
    pid, unit = seed.patients[pseudonym], seed.units["MON-NORD"]
    alert = seed.alert_id(pseudonym)
    gateway = c.get("/api/v1/gateways", headers=phys).json()[0]["id"]
    staff_id = next(s["id"] for s in c.get("/api/v1/staff", headers=admin).json() if s["subject"] == NURSE)
    calls: list[tuple[str, str, str, dict[str, str], Any]] = [
        ("get", "/api/v1/me", "/api/v1/me", phys, None),
        ("get", "/api/v1/units", "/api/v1/units", admin, None),
        ("post", "/api/v1/units", "/api/v1/units", admin, {"code": "MON-TEST", "name": "Testenheten"}),
        ("get", "/api/v1/staff", "/api/v1/staff", admin, None),
        ("post", "/api/v1/staff", "/api/v1/staff", admin, {"subject": "t-1", "display_name": "T", "roles": ["nurse"]}),
        (
            "patch",
            "/api/v1/staff/{staff_id}",
            f"/api/v1/staff/{staff_id}",
            admin,
            {"roles": ["nurse"], "unit_ids": [str(unit)]},
        ),
        ("get", "/api/v1/gateways", "/api/v1/gateways", phys, None),
        ("get", "/api/v1/gateways/{gateway_id}", f"/api/v1/gateways/{gateway}", phys, None),
        ("post", "/api/v1/gateways", "/api/v1/gateways", admin, {"id": "gw-model-1"}),
        ("get", "/api/v1/patients/{patient_id}", f"/api/v1/patients/{pid}", phys, None),
        (
            "get",
            "/api/v1/patients/{patient_id}/observations",
            f"/api/v1/patients/{pid}/observations?component=weight",
            phys,
            None,
        ),
        ("get", "/api/v1/patients/{patient_id}/summary", f"/api/v1/patients/{pid}/summary", phys, None),
        ("get", "/api/v1/patients/{patient_id}/care-plans", f"/api/v1/patients/{pid}/care-plans", phys, None),
        (
            "post",
            "/api/v1/patients/{patient_id}/care-plans",
            f"/api/v1/patients/{pid}/care-plans",
            phys,
            {"conditions": ["heart_failure"], "dry_weight_kg": 81.5},
        ),
        ("get", "/api/v1/patients/{patient_id}/fhir", f"/api/v1/patients/{pid}/fhir", phys, None),
        ("get", "/api/v1/patients/{patient_id}/fhir/summary", f"/api/v1/patients/{pid}/fhir/summary", phys, None),
        ("delete", "/api/v1/patients/{patient_id}/gateway", f"/api/v1/patients/{pid}/gateway", phys, None),
        (
            "post",
            "/api/v1/patients/{patient_id}/gateway",
            f"/api/v1/patients/{pid}/gateway",
            phys,
            {"gateway_id": "gw-model-1"},
        ),
        (
            "post",
            "/api/v1/patients",
            "/api/v1/patients",
            phys,
            {"personnummer": "19811218-9876", "display_name": "Test Testsson", "unit_id": str(unit)},
        ),
        ("get", "/api/v1/units/{unit_id}/alert-burden", f"/api/v1/units/{unit}/alert-burden", phys, None),
        (
            "post",
            "/api/v1/units/{unit_id}/replays",
            f"/api/v1/units/{unit}/replays",
            phys,
            {"days": 7, "proposal": {"HF1": {"gain_kg": 1.5}}},
        ),
        ("get", "/api/v1/units/{unit_id}/replays", f"/api/v1/units/{unit}/replays", phys, None),
        ("get", "/api/v1/audit", "/api/v1/audit?limit=5", auditor, None),
        ("post", "/api/v1/alerts/{alert_id}/acknowledge", f"/api/v1/alerts/{alert}/acknowledge", phys, {}),
        ("post", "/api/v1/alerts/{alert_id}/comment", f"/api/v1/alerts/{alert}/comment", phys, {"comment": "Ringt"}),
        ("post", "/api/v1/alerts/{alert_id}/claim", f"/api/v1/alerts/{alert}/claim", phys, None),
    ]
    checked: set[str] = set()
    for method, template, url, headers, body in calls:
        r = c.request(method.upper(), url, headers=headers, json=body)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        schema = doc["paths"][template][method]["responses"][str(r.status_code)]["content"]["application/json"]
        name = _component(doc, schema["schema"])
        assert name is not None, (method, template)
        model = getattr(schemas, name)
        answer = r.json()
        for item in answer if isinstance(answer, list) else [answer]:
            model.model_validate(item)
        checked.add(name)
    replay = c.get(f"/api/v1/units/{unit}/replays", headers=phys).json()[0]["id"]
    schemas.ReplayOut.model_validate(c.get(f"/api/v1/replays/{replay}", headers=phys).json())
    assert {"AlertOut", "PatientDetail", "ObservationSeries", "AlertBurden", "FhirBundle", "AuditRow"} <= checked


def test_a_model_refuses_a_wrong_answer() -> None:
    # The check above can fail: a series point without its time does not fit.
    with pytest.raises(ValidationError):
        schemas.ObservationSeries.model_validate(
            {
                "component": "weight",
                "unit": "kg",
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-02T00:00:00Z",
                "downsampled": False,
                "points": [{"mean": 80.0, "min": 80.0, "max": 80.0, "n": 1}],
            }
        )
