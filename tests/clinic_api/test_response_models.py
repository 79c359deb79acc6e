"""The main read endpoints declare response models, and real answers fit them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clinic_api.schemas import AlertDetail, AlertListItem, PatientListItem
from tests.clinic_api.conftest import PHYSICIAN, TestClient

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
