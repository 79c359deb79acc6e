"""Alert queue: ordering by severity then age, filters, evidence, bad filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.clinic_api.conftest import NURSE, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


# These tests only read (or write where no other test looks): one seeded database per
# module instead of one per test, which costs ~1 s each on this machine.
@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


@pytest.fixture
def seed(shared_seed: Seed) -> Seed:
    return shared_seed


def test_queue_sorted_by_severity_then_age_with_evidence(client: TestClient, auth: Auth) -> None:
    rows = client.get("/api/v1/alerts", headers=auth(PHYSICIAN)).json()
    assert len(rows) == 5
    keys = [(-RANK[r["severity"]], r["opened_at"]) for r in rows]
    assert keys == sorted(keys)
    assert rows[0]["severity"] == "high"  # the COPD SpO2 alert
    assert all(r["evidence"]["rule_id"] == r["rule_id"] for r in rows)
    assert all(r["age_s"] > 0 for r in rows)


@pytest.mark.parametrize(
    ("params", "rules"),
    [
        ({"severity": "low"}, {"A1", "H1"}),
        ({"severity": ["high", "medium"]}, {"C1", "HF1", "D1"}),
        ({"condition": "diabetes_t1"}, {"D1"}),
        ({"status": "resolved"}, set()),
    ],
)
def test_queue_filters(client: TestClient, auth: Auth, params: dict[str, object], rules: set[str]) -> None:
    rows = client.get("/api/v1/alerts", headers=auth(PHYSICIAN), params=params).json()
    assert {r["rule_id"] for r in rows} == rules


def test_queue_filter_by_unit(client: TestClient, auth: Auth, seed: Seed) -> None:
    rows = client.get("/api/v1/alerts", headers=auth(PHYSICIAN), params={"unit": str(seed.units["MON-SYD"])}).json()
    assert [r["rule_id"] for r in rows] == ["C1"]


@pytest.mark.parametrize(
    "params", [{"severity": "urgent"}, {"status": "closed"}, {"condition": "flu"}, {"limit": 0}, {"unit": "x"}]
)
def test_queue_rejects_bad_filters(client: TestClient, auth: Auth, params: dict[str, object]) -> None:
    r = client.get("/api/v1/alerts", headers=auth(NURSE), params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][0] == "query"


def test_unknown_alert_is_404(client: TestClient, auth: Auth) -> None:
    assert client.post("/api/v1/alerts/999999/acknowledge", headers=auth(NURSE)).status_code == 404
    assert client.get("/api/v1/alerts/0", headers=auth(NURSE)).status_code == 422


def test_queue_page_shows_evidence_in_swedish(client: TestClient, auth: Auth) -> None:
    page = client.get("/ui/alerts", headers=auth(NURSE))
    assert page.status_code == 200
    assert '<html lang="sv">' in page.text
    assert "Viktökning &gt; 2 kg på 3 dygn" in page.text
    assert "Gränsvärden" in page.text
    assert "gain_kg 2,0 (standard)" in page.text
    assert page.text.count("<li>Vikt ") == 4  # the four weight readings of the HF1 evidence
    assert "<li>Vikt 85,2\u00a0kg · " in page.text  # unit and decimal comma
    assert 'data-poll-s="10"' in page.text  # polled in place, never reloaded
    assert "SpO2 &lt; 88 % i vila" not in page.text  # MON-SYD's alert is not this nurse's


def test_metrics_count_requests_by_route_template(client: TestClient, auth: Auth, seed: Seed) -> None:
    client.get(f"/api/v1/patients/{seed.patients['P-DEMO0001']}", headers=auth(NURSE))
    text = client.get("/metrics").text
    assert 'egenmon_clinic_requests_total{method="GET",route="/api/v1/patients/{patient_id}",status="2xx"}' in text
    assert str(seed.patients["P-DEMO0001"]) not in text
    assert "egenmon_clinic_request_seconds_bucket" in text
