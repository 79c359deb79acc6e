"""Alert actions update the alert and write alert_event rows (who, when)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg

from tests.clinic_api.conftest import NURSE, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _events(seed: Seed, alert_id: int) -> list[tuple[str, str | None, str | None]]:
    with psycopg.connect(seed.url) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                """SELECT e.event, s.subject, e.comment FROM alert_event e LEFT JOIN staff s ON s.id = e.staff_id
                   WHERE alert_id = %s ORDER BY e.id""",
                (alert_id,),
            ).fetchall()
        ]


def test_acknowledge_then_resolve_records_who_and_when(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0002")
    r = client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(NURSE), json={"comment": "Ringer upp"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "acknowledged"
    assert body["acknowledged_at"] is not None
    open_ids = [a["id"] for a in client.get("/api/v1/alerts", headers=auth(NURSE)).json()]
    assert aid not in open_ids
    assert client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(NURSE)).status_code == 409
    r = client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "contacted_patient"})
    assert r.json()["status"] == "resolved"
    escalation = {"role": "physician", "reason": "Behöver läkarbedömning"}
    assert client.post(f"/api/v1/alerts/{aid}/escalate", headers=auth(NURSE), json=escalation).status_code == 409
    assert _events(seed, aid) == [
        ("opened", None, None),
        ("acknowledged", NURSE, "Ringer upp"),
        ("resolved", NURSE, None),
    ]
    detail = client.get(f"/api/v1/alerts/{aid}", headers=auth(NURSE)).json()
    assert [e["event"] for e in detail["events"]] == ["opened", "acknowledged", "resolved"]
    assert detail["events"][1]["staff_name"] == "Sjuksköterska Anna Demo"


def test_snooze_needs_a_future_time(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0003")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    r = client.post(f"/api/v1/alerts/{aid}/snooze", headers=auth(NURSE), json={"until": past})
    assert r.status_code == 422
    assert "future" in r.json()["detail"]
    naive = "2030-01-01T10:00:00"
    assert client.post(f"/api/v1/alerts/{aid}/snooze", headers=auth(NURSE), json={"until": naive}).status_code == 422
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
    r = client.post(f"/api/v1/alerts/{aid}/snooze", headers=auth(NURSE), json={"until": until.isoformat()})
    assert r.status_code == 200
    assert r.json()["status"] == "snoozed"
    assert dt.datetime.fromisoformat(r.json()["snoozed_until"]) == until
    assert _events(seed, aid)[-1][0] == "snoozed"
    assert aid not in [a["id"] for a in client.get("/api/v1/alerts", headers=auth(NURSE)).json()]
    with psycopg.connect(seed.url) as conn:
        conn.execute("UPDATE alert SET snoozed_until = now() - interval '1 minute' WHERE id = %s", (aid,))
    # The snooze ran out: back in the open queue.
    assert aid in [a["id"] for a in client.get("/api/v1/alerts", headers=auth(NURSE)).json()]


def test_escalate_increments_level_and_comment_needs_text(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0001")
    for level in (1, 2):
        r = client.post(
            f"/api/v1/alerts/{aid}/escalate", headers=auth(PHYSICIAN), json={"role": "physician", "reason": "Bedömning"}
        )
        assert r.json()["escalation_level"] == level
    assert client.post(f"/api/v1/alerts/{aid}/comment", headers=auth(NURSE), json={}).status_code == 422
    assert client.post(f"/api/v1/alerts/{aid}/comment", headers=auth(NURSE), json={"comment": ""}).status_code == 422
    r = client.post(f"/api/v1/alerts/{aid}/comment", headers=auth(NURSE), json={"comment": "Ok"})
    assert r.status_code == 200
    assert [e[0] for e in _events(seed, aid)][-3:] == ["escalated", "escalated", "commented"]


def test_page_action_acknowledges_and_redirects(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0001")
    r = client.post(
        f"/ui/alerts/{aid}/acknowledge", headers=auth(NURSE), data={"back": "/ui/alerts"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/alerts?done=acknowledged"
    assert _events(seed, aid)[-1][:2] == ("acknowledged", NURSE)
    evil = client.post(
        f"/ui/alerts/{aid}/escalate",
        headers=auth(NURSE),
        data={"back": "//evil.example", "to": "role:physician", "comment": "Bedöm"},
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/ui/alerts?done=escalated"


def test_patient_page_action_returns_to_the_patient(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0003"]
    aid = seed.alert_id("P-DEMO0003")
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE))
    assert f'action="/ui/alerts/{aid}/acknowledge"' in page.text
    back = f"/ui/patients/{pid}?days=14"
    r = client.post(f"/ui/alerts/{aid}/acknowledge", headers=auth(NURSE), data={"back": back}, follow_redirects=False)
    assert r.headers["location"] == back + "&done=acknowledged"
    page = client.get(back, headers=auth(NURSE))
    assert f'action="/ui/alerts/{aid}/acknowledge"' not in page.text
    assert "Kvitterat" in page.text


def test_queue_holds_only_what_staff_must_act_on(client: TestClient, auth: Auth, seed: Seed) -> None:
    """Technical, patient-routed and awaiting-confirmation events stay out of the clinical queue."""
    pid = seed.patients["P-DEMO0001"]
    with psycopg.connect(seed.url, autocommit=True) as conn:
        for event_type, route, status, shown in (
            ("gateway_offline", "technical", "open", True),
            ("missing_data", "patient", "open", False),
            ("bp_crisis", "staff", "awaiting_confirmation", False),
        ):
            conn.execute(
                "INSERT INTO alert (patient_id, rule_id, event_type, route, status, severity, title, confirm_by,"
                " shown_to_staff_at) VALUES (%s, 'X', %s, %s, %s, 'high', 't', now() + interval '15 min',"
                " CASE WHEN %s THEN now() END)",
                (pid, event_type, route, status, shown),
            )
    queue = client.get("/api/v1/alerts", headers=auth(NURSE)).json()
    assert {r["event_type"] for r in queue}.isdisjoint({"gateway_offline", "missing_data", "bp_crisis"})
    assert all(r["route"] == "staff" for r in queue)
    support = client.get("/api/v1/alerts", params={"route": "technical"}, headers=auth(NURSE)).json()
    assert [r["event_type"] for r in support] == ["gateway_offline"]
    bad = client.get("/api/v1/alerts", params={"route": "everyone"}, headers=auth(NURSE))
    assert bad.status_code == 422
