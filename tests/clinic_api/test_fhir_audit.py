"""FHIR export validated against the R4B models; audit search for auditors, append-only log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg
import pytest
from fhir.resources.R4B.bundle import Bundle

from device_profiles.vocabulary import COMPONENTS
from tests.clinic_api.conftest import AUDITOR, NURSE, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


@pytest.fixture
def seed(shared_seed: Seed) -> Seed:
    return shared_seed


def test_bundle_has_loinc_coded_observations(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0001"]
    start = (seed.now - dt.timedelta(days=3)).isoformat()
    r = client.get(f"/api/v1/patients/{pid}/fhir", headers=auth(NURSE), params={"start": start})
    assert r.status_code == 200
    bundle = Bundle.model_validate(r.json())
    assert bundle.type == "collection"
    resources = [e.resource for e in bundle.entry]
    assert resources[0].get_resource_type() == "Patient"
    observations = [r for r in resources[1:] if r.get_resource_type() == "Observation"]
    flags = [r for r in resources[1:] if r.get_resource_type() == "Flag"]
    assert observations
    assert sorted(f.code.coding[0].code for f in flags) == ["H1", "HF1"]
    assert {f.status for f in flags} == {"active"}
    codes = {}
    for obs in observations:
        loinc = [c.code for c in obs.code.coding if c.system == "http://loinc.org"]
        local = [c.code for c in obs.code.coding if c.system == "urn:egenmon:component"]
        codes[local[0]] = loinc[0]
        assert obs.subject.reference == f"Patient/{pid}"
        assert obs.valueQuantity.system == "http://unitsofmeasure.org"
        assert obs.effectiveDateTime >= dt.datetime.fromisoformat(start)
    assert codes == {c: COMPONENTS[c].loinc for c in ("weight", "systolic", "diastolic", "pulse")}
    assert codes["systolic"] == "8480-6"
    assert "19121212-1212" not in r.text


def test_bundle_period_validation(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0001"]
    r = client.get(
        f"/api/v1/patients/{pid}/fhir",
        headers=auth(NURSE),
        params={"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 422
    empty = client.get(
        f"/api/v1/patients/{pid}/fhir",
        headers=auth(NURSE),
        params={"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"},
    ).json()
    assert len(empty["entry"]) == 1  # the Patient only


def test_auditor_searches_by_patient_and_staff(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0003"]
    client.get(f"/api/v1/patients/{pid}", headers=auth(NURSE))
    client.get(f"/api/v1/patients/{pid}/summary", headers=auth(PHYSICIAN))
    client.get("/api/v1/patients", headers=auth(NURSE))
    rows = client.get("/api/v1/audit", headers=auth(AUDITOR), params={"patient_id": str(pid)}).json()
    resources = {(r["subject"], r["resource"]) for r in rows}
    assert ("demo-nurse-anna", f"patient/{pid}") in resources
    assert ("demo-physician-erik", f"patient/{pid}/summary") in resources
    assert ("demo-nurse-anna", "patient_list") in resources  # list reads name their patients
    assert all(r["remote_addr"] for r in rows)
    me = client.get("/api/v1/me", headers=auth(NURSE)).json()
    mine = client.get("/api/v1/audit", headers=auth(AUDITOR), params={"staff_id": me["id"], "action": "read"}).json()
    assert mine
    assert {r["subject"] for r in mine} == {"demo-nurse-anna"}
    # Searching is itself recorded.
    searches = client.get("/api/v1/audit", headers=auth(AUDITOR), params={"action": "search"}).json()
    assert len(searches) >= 2


def test_audit_log_cannot_be_changed(seed: Seed) -> None:
    with psycopg.connect(seed.url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit_log SET action = 'x'")


def test_no_route_changes_the_audit_log(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/audit"]) == {"get"}
