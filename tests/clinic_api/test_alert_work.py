"""Working an alert: ownership, escalation to a named physician or a role, resolving with a
structured reason and undoing it within the window, and the detail page that shows it all."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from clinic_api import labels
from tests.clinic_api.conftest import NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]


def _staff_id(seed: Seed, subject: str) -> uuid.UUID:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT id FROM staff WHERE subject = %s", (subject,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _events(seed: Seed, alert_id: int) -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    with psycopg.connect(seed.url) as conn:
        rows = conn.execute(
            """SELECT e.event, s.subject, e.comment, e.details FROM alert_event e
               LEFT JOIN staff s ON s.id = e.staff_id WHERE alert_id = %s ORDER BY e.id""",
            (alert_id,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_claim_assign_leave_and_handover(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0001")
    nurse, physician = _staff_id(seed, NURSE), _staff_id(seed, PHYSICIAN)
    r = client.post(f"/api/v1/alerts/{aid}/claim", headers=auth(NURSE))
    assert r.status_code == 200
    assert r.json()["assigned_to"] == str(nurse)
    assert client.post(f"/api/v1/alerts/{aid}/claim", headers=auth(NURSE)).status_code == 409
    mine = client.get("/api/v1/alerts", params={"assigned_to": "me"}, headers=auth(NURSE)).json()
    assert [a["id"] for a in mine] == [aid]
    assert client.get("/api/v1/alerts", params={"assigned_to": "me"}, headers=auth(PHYSICIAN)).json() == []

    # MON-SYD's nurse is not a colleague in this patient's unit.
    other = _staff_id(seed, NURSE_SYD)
    r = client.post(f"/api/v1/alerts/{aid}/assign", headers=auth(NURSE), json={"to": str(other)})
    assert r.status_code == 422
    assert "care unit" in r.json()["detail"]
    r = client.post(f"/api/v1/alerts/{aid}/assign", headers=auth(NURSE), json={"to": str(physician)})
    assert r.json()["assigned_to"] == str(physician)
    r = client.post(
        f"/api/v1/alerts/{aid}/handover",
        headers=auth(PHYSICIAN),
        json={"comment": "Ring patienten kl 08", "to": str(nurse)},
    )
    assert r.json()["assigned_to"] == str(nurse)
    assert client.post(f"/api/v1/alerts/{aid}/handover", headers=auth(NURSE), json={"comment": ""}).status_code == 422
    r = client.post(f"/api/v1/alerts/{aid}/unassign", headers=auth(NURSE))
    assert r.json()["assigned_to"] is None
    assert client.post(f"/api/v1/alerts/{aid}/unassign", headers=auth(NURSE)).status_code == 409
    work = [(e[0], e[1], e[2], e[3].get("to"), e[3].get("by")) for e in _events(seed, aid)[1:]]
    assert work == [
        ("assigned", NURSE, None, str(nurse), str(nurse)),
        ("assigned", NURSE, None, str(physician), str(nurse)),
        ("handover", PHYSICIAN, "Ring patienten kl 08", str(nurse), str(physician)),
        ("unassigned", NURSE, None, None, str(nurse)),
    ]


def test_escalate_to_a_named_physician_reaches_them(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0002")
    physician = _staff_id(seed, PHYSICIAN)
    for body in ({"to": str(physician)}, {"reason": "Bedöm"}, {"to": str(physician), "role": "nurse", "reason": "x"}):
        assert client.post(f"/api/v1/alerts/{aid}/escalate", headers=auth(NURSE), json=body).status_code == 422
    # Only a physician of the unit can be named: the nurse herself cannot.
    nurse = _staff_id(seed, NURSE)
    r = client.post(f"/api/v1/alerts/{aid}/escalate", headers=auth(NURSE), json={"to": str(nurse), "reason": "x"})
    assert r.status_code == 422
    assert client.get("/api/v1/alerts", params={"escalated_to": "me"}, headers=auth(PHYSICIAN)).json() == []
    r = client.post(
        f"/api/v1/alerts/{aid}/escalate",
        headers=auth(NURSE),
        json={"to": str(physician), "reason": "Upprepade låga värden trots åtgärd"},
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["escalated_to"], body["escalated_to_role"], body["escalation_level"]) == (
        str(physician),
        "physician",
        1,
    )
    assert body["escalated_at"] is not None
    event = _events(seed, aid)[-1]
    assert event[:3] == ("escalated", NURSE, "Upprepade låga värden trots åtgärd")
    assert event[3] == {"level": 1, "to": str(physician), "role": "physician", "by": "staff"}
    # The recipient physician finds it; the nurse who escalated does not.
    mine = client.get("/api/v1/alerts", params={"escalated_to": "me"}, headers=auth(PHYSICIAN)).json()
    assert [a["id"] for a in mine] == [aid]
    assert client.get("/api/v1/alerts", params={"escalated_to": "me"}, headers=auth(NURSE)).json() == []
    assert client.get("/api/v1/alerts", params={"escalated_to": "someone"}, headers=auth(NURSE)).status_code == 422


def test_escalation_to_a_role_is_seen_by_that_role(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0003")
    r = client.post(
        f"/api/v1/alerts/{aid}/escalate", headers=auth(NURSE), json={"role": "physician", "reason": "Jourläkare"}
    )
    assert (r.json()["escalated_to"], r.json()["escalated_to_role"]) == (None, "physician")
    assert [a["id"] for a in client.get("/api/v1/alerts?escalated_to=me", headers=auth(PHYSICIAN)).json()] == [aid]
    assert client.get("/api/v1/alerts?escalated_to=me", headers=auth(NURSE)).json() == []


def test_resolve_needs_a_known_reason(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0003")
    for body in ({}, {"reason": "fixed"}, {"reason": "not_confirmed"}, {"comment": "klart"}):
        r = client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json=body)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "reason"]
    assert (
        "contacted_patient"
        in client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "x"}).json()["detail"][0][
            "msg"
        ]
    )
    r = client.post(
        f"/api/v1/alerts/{aid}/resolve",
        headers=auth(NURSE),
        json={"reason": "medication_changed", "comment": "Dos ökad"},
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["resolution_reason"]) == ("resolved", "medication_changed")
    event = _events(seed, aid)[-1]
    assert event[:3] == ("resolved", NURSE, "Dos ökad")
    assert event[3]["previous_status"] == "open"


def test_undo_restores_the_previous_status_within_the_window(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0002")
    assert client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE)).status_code == 409  # not resolved
    client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(NURSE))
    client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "no_action_needed"})
    # Only the one who resolved may take it back.
    r = client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(PHYSICIAN))
    assert r.status_code == 409
    assert "who resolved" in r.json()["detail"]
    r = client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE))
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["resolved_at"], body["resolution_reason"]) == ("acknowledged", None, None)
    assert _events(seed, aid)[-1][:2] == ("resolve_undone", NURSE)
    assert _events(seed, aid)[-1][3]["restored_status"] == "acknowledged"
    assert client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE)).status_code == 409


def test_undo_after_the_window_is_409(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0001")
    client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "contacted_patient"})
    with psycopg.connect(seed.url) as conn:  # 31 s ago: just past the 30 s window
        conn.execute(
            "UPDATE alert_event SET at = now() - interval '31 seconds' WHERE alert_id = %s AND event = 'resolved'",
            (aid,),
        )
    r = client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE))
    assert r.status_code == 409
    assert "within 30 seconds" in r.json()["detail"]
    assert client.get(f"/api/v1/alerts/{aid}", headers=auth(NURSE)).json()["status"] == "resolved"


def test_undo_is_refused_when_a_newer_alert_of_the_event_is_open(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0002")
    client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "contacted_patient"})
    with psycopg.connect(seed.url) as conn:
        conn.execute(
            """INSERT INTO alert (patient_id, rule_id, event_type, severity, title, shown_to_staff_at)
               SELECT patient_id, rule_id, event_type, severity, title, now() FROM alert WHERE id = %s""",
            (aid,),
        )
    r = client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE))
    assert r.status_code == 409
    assert "newer alert" in r.json()["detail"]


def test_detail_page_explains_the_alert_in_swedish(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0001")  # HF1 weight gain, then the H1 BP alert
    page = client.get(f"/ui/alerts/{aid}", headers=auth(NURSE))
    assert page.status_code == 200
    text = page.text
    assert "<h1>Viktökning &gt; 2 kg på 3 dygn</h1>" in text
    assert labels.RULE["HF1"].replace(">", "&gt;") in text
    assert "2,6 kg" in text  # the value with its unit and a decimal comma
    assert 'Viktökning: 2 kg <span class="source">(standard)</span>' in text
    assert text.count("<td>Vikt</td>") == 4  # the four triggering readings in a table
    assert "85,2 kg" in text
    assert f'href="/ui/patients/{seed.patients["P-DEMO0001"]}"' in text
    assert "Öppet" in text
    assert "Larm skapat" in text  # the timeline
    h1 = client.get(f"/ui/alerts/{seed.alert_id('P-DEMO0001') + 1}", headers=auth(NURSE)).text
    assert "Systoliskt: 135 mmHg" in h1  # mmHg, never mm[Hg]
    assert "mm[Hg]" not in h1
    assert re.search(r"<td>\d+ \w{3} \d{4} \d\d:\d\d</td><td>Systoliskt blodtryck</td><td>146 mmHg</td>", h1)


def test_detail_page_of_another_unit_or_a_bad_id(client: TestClient, auth: Auth, seed: Seed) -> None:
    syd = seed.alert_id("P-DEMO0004")  # the MON-SYD COPD alert
    r = client.get(f"/ui/alerts/{syd}", headers=auth(NURSE))
    assert r.status_code == 404
    assert "Larmet finns inte" in r.text
    assert "SpO2" not in r.text
    assert client.get(f"/ui/alerts/{syd}", headers=auth(NURSE_SYD)).status_code == 200
    assert client.get("/ui/alerts/999999", headers=auth(NURSE)).status_code == 404
    assert client.get("/ui/alerts/0", headers=auth(NURSE)).status_code == 422
    r = client.post(f"/ui/alerts/{syd}/claim", headers=auth(NURSE), follow_redirects=False)
    assert r.status_code == 404


def test_page_actions_confirm_and_refuse_in_swedish(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id("P-DEMO0002")
    url = f"/ui/alerts/{aid}"
    r = client.post(f"{url}/claim", headers=auth(NURSE), data={"back": url}, follow_redirects=False)
    assert r.headers["location"] == f"{url}?done=claimed"
    page = client.get(r.headers["location"], headers=auth(NURSE)).text
    assert (
        '<div class="flash-region" role="status" aria-live="polite"><p class="flash ok">Du har tagit ärendet.</p>'
        in page
    )
    assert "Lämna ärendet" in page
    # A resolve without a reason (the queue's one-click button) lands on the form with a message.
    r = client.post(f"{url}/resolve", headers=auth(NURSE), data={"back": "/ui/alerts"}, follow_redirects=False)
    assert r.headers["location"] == f"{url}?error=reason_required#avsluta"
    assert "Ange en anledning." in client.get(r.headers["location"], headers=auth(NURSE)).text
    assert client.get(f"/api/v1/alerts/{aid}", headers=auth(NURSE)).json()["status"] == "open"
    r = client.post(
        f"{url}/escalate",
        headers=auth(NURSE),
        data={"to": "role:physician", "comment": "Bedöm"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/ui/alerts?done=escalated"
    r = client.post(f"{url}/resolve", headers=auth(NURSE), data={"reason": "referred"}, follow_redirects=False)
    assert r.headers["location"] == f"{url}?done=resolved"
    page = client.get(r.headers["location"], headers=auth(NURSE)).text
    assert "Larmet avslutades" in page
    assert f'action="{url}/undo-resolve"' in page
    assert "Anledning: Remitterad / hänvisad" in page  # the timeline
    assert "Till: Läkare (roll)" in page
    # Someone else sees no undo button.
    assert f'action="{url}/undo-resolve"' not in client.get(url, headers=auth(PHYSICIAN)).text
