"""Threshold replay from the clinic side: the API queues, the alerting worker runs, the API and
the page show the result (tests may import both packages; the packages never import each other)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from alerting.replay import replay, steps
from alerting.replay_worker import process_one
from alerting.service import evaluate_and_store
from clinic_api.labels import TZ
from tests.clinic_api.conftest import ADMIN, AUDITOR, NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
HOUR = dt.timedelta(hours=1)
PROPOSAL = {"D1": {"threshold_mmol_l": 3.0}}  # a 3.5 low is no longer an alert


def _low_patient(seed: Seed) -> tuple[str, dt.datetime]:
    """A MON-SYD patient whose CGM spent an hour at 3.5 mmol/L 30 hours ago, with the live
    hypoglycaemia alert the engine raised for it; MON-SYD's demo alerts are removed so the
    past alerts of the unit are exactly this one. Returns the pseudonym and the alert's opening."""
    unit = seed.units["MON-SYD"]
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(seed.url, autocommit=True) as conn:
        conn.execute("DELETE FROM alert WHERE patient_id IN (SELECT id FROM patient WHERE unit_id = %s)", (unit,))
        pid = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO patient (id, pseudonym, display_name, birth_year, unit_id) "
            "VALUES (%s, 'P-REPLAY1', 'Testperson Replay', 1960, %s)",
            (pid, unit),
        )
        # Level 1 lows go to the patient by default; this care plan sends them to staff too.
        conn.execute(
            "INSERT INTO care_plan (patient_id, version, conditions, thresholds) "
            """VALUES (%s, 1, '{diabetes_t1}', '{"routing": {"D1": "staff"}}')""",
            (pid,),
        )
        rows = []
        for k in range(12 * 48):
            t = now - 48 * HOUR + k * dt.timedelta(minutes=5)
            low = now - 30 * HOUR <= t < now - 29 * HOUR
            rows.append((str(uuid.uuid4()), t, pid, 3.5 if low else 6.2 + 0.03 * (k % 24), t))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,"
                " kind, value, unit, status, received_at) VALUES (%s, 'glucose_interstitial', %s, %s, 'gw-replay',"
                " 'AA:BB', 'glucose_cgm', %s, 'mmol/L', 'valid', %s)",
                rows,
            )
        for t in steps(now - 47 * HOUR, now, 1.0):
            evaluate_and_store(conn, [pid], now=t, trigger="test")
        alerts = conn.execute(
            "SELECT event_type, opened_at FROM alert WHERE patient_id = %s AND shown_to_staff_at IS NOT NULL", (pid,)
        ).fetchall()
    assert [a[0] for a in alerts] == ["hypoglycaemia"]
    return "P-REPLAY1", alerts[0][1]


def _post(client: TestClient, auth: Auth, unit: uuid.UUID, body: Any, who: str = NURSE_SYD) -> Any:
    return client.post(f"/api/v1/units/{unit}/replays", headers=auth(who), json=body)


def _audit(seed: Seed, resource: str) -> list[dict[str, Any]]:
    with psycopg.connect(seed.url) as conn:
        rows = conn.execute(
            "SELECT action, detail FROM audit_log WHERE resource = %s ORDER BY id", (resource,)
        ).fetchall()
    return [{"action": r[0], "detail": r[1]} for r in rows]


def test_api_end_to_end_equals_a_direct_replay(client: TestClient, auth: Auth, seed: Seed) -> None:
    pseudonym, _ = _low_patient(seed)
    unit = seed.units["MON-SYD"]
    r = _post(client, auth, unit, {"days": 2, "proposal": PROPOSAL})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    assert r.json()["status"] == "queued"
    listed = client.get(f"/api/v1/units/{unit}/replays", headers=auth(NURSE_SYD)).json()
    assert [(q["id"], q["status"], q["proposal"], q["caught"]) for q in listed] == [(rid, "queued", PROPOSAL, None)]

    assert process_one(seed.url) is True
    out = client.get(f"/api/v1/replays/{rid}", headers=auth(NURSE_SYD)).json()
    assert (out["status"], out["error"], out["days"]) == ("done", None, 2)
    requested_at = dt.datetime.fromisoformat(out["requested_at"])
    with psycopg.connect(seed.url, autocommit=True) as conn:
        direct = replay(conn, str(unit), days=2, proposal=PROPOSAL, now=requested_at).as_dict()
    assert out["result"] == json.loads(json.dumps(direct))
    assert [(p["pseudonym"], p["caught"]) for p in out["result"]["past"]] == [(pseudonym, False)]
    hypo = next(e for e in out["result"]["by_event_type"] if e["event_type"] == "hypoglycaemia")
    assert (hypo["current"], hypo["proposed"]) == (1, 0)
    listed = client.get(f"/api/v1/units/{unit}/replays", headers=auth(NURSE_SYD)).json()
    assert (listed[0]["status"], listed[0]["caught"], listed[0]["missed"]) == ("done", 0, 1)

    created = _audit(seed, f"care_unit/{unit}/replays")
    assert [a["action"] for a in created] == ["create", "read", "read"]
    assert created[0]["detail"] == {"replay_id": rid, "days": 2, "condition": None, "proposal": PROPOSAL}
    (read,) = _audit(seed, f"replay/{rid}")
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT id::text FROM patient WHERE pseudonym = %s", (pseudonym,)).fetchone()
    assert row is not None
    assert read["detail"]["patients"] == [row[0]]  # the audit search by patient finds the read


def test_a_failed_request_is_shown_and_the_next_still_runs(client: TestClient, auth: Auth, seed: Seed) -> None:
    unit = seed.units["MON-SYD"]
    # The API only knows the shape of rule parameters; the registry lives in alerting.
    bad = _post(client, auth, unit, {"days": 1, "proposal": {"D1": {"no_such_parameter": 3}}}).json()["id"]
    good = _post(client, auth, unit, {"days": 1, "proposal": {}}).json()["id"]
    assert process_one(seed.url) is True
    assert process_one(seed.url) is True
    assert process_one(seed.url) is False
    failed = client.get(f"/api/v1/replays/{bad}", headers=auth(NURSE_SYD)).json()
    assert (failed["status"], failed["result"]) == ("failed", None)
    assert failed["error"] == "D1 has no parameter 'no_such_parameter'"
    assert client.get(f"/api/v1/replays/{good}", headers=auth(NURSE_SYD)).json()["status"] == "done"
    page = client.get(f"/ui/analytics/replays/{bad}", headers=auth(NURSE_SYD))
    assert ">Misslyckades<" in page.text
    assert "no_such_parameter" in page.text
    assert 'http-equiv="refresh"' not in page.text


def test_page_form_list_and_result(client: TestClient, auth: Auth, seed: Seed) -> None:
    pseudonym, opened = _low_patient(seed)
    unit = seed.units["MON-SYD"]
    form = {
        "unit": str(unit),
        "days": "7",
        "condition": "diabetes_t1",
        "rule_1": "D1",
        "param_1": "threshold_mmol_l",
        "value_1": "3,0",  # Swedish decimal comma
        "rule_2": "",
        "param_2": "",
        "value_2": "",
    }
    r = client.post("/ui/analytics/replays", headers=auth(NURSE_SYD), data=form, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/ui/analytics?unit={unit}#prova"
    page = client.get("/ui/analytics", headers=auth(NURSE_SYD), params={"unit": str(unit)}).text
    assert ">Prova nya gränsvärden<" in page
    assert ">I kö<" in page
    assert "D1 threshold_mmol_l = 3<" in page
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT id, days, condition, proposal FROM replay_request").fetchone()
    assert row is not None
    rid = row[0]
    assert row[1:] == (7, "diabetes_t1", PROPOSAL)
    queued = client.get(f"/ui/analytics/replays/{rid}", headers=auth(NURSE_SYD)).text
    assert '<meta http-equiv="refresh" content="5">' in queued  # only while queued or running

    assert process_one(seed.url) is True
    done = client.get(f"/ui/analytics/replays/{rid}", headers=auth(NURSE_SYD))
    assert done.status_code == 200
    html = done.text
    assert 'http-equiv="refresh"' not in html  # never once done
    for heading in ("Larm nu", "Larm med förslaget", "per patientmånad", "Per händelsetyp", "Med förslaget"):
        assert f">{heading}<" in html
    assert ">Klar<" in html
    local = opened.astimezone(TZ).strftime("%Y-%m-%d %H:%M")
    missed_row = (
        f"<td>{pseudonym}</td>\n  <td>Lågt blodsocker</td>\n  <td>Medel</td>\n  <td>{local}</td>\n"
        '  <td class="missed">Missas</td>'
    )
    assert missed_row in html
    assert "Fångas" not in html
    # 1 alert now, 0 with the proposal; only the one type 1 diabetes patient: 7 / 30 patient-months.
    assert "· 1 patient · 0,2 patientmånader ·" in html
    assert '<th scope="row">Lågt blodsocker</th>\n  <td>1</td>\n  <td>4,3</td>\n  <td>0</td>\n  <td>0,0</td>' in html
    page = client.get("/ui/analytics", headers=auth(NURSE_SYD), params={"unit": str(unit)}).text
    assert ">Klar<" in page
    assert "0 fångas, 1 missas" in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"rule_1": "D1", "param_1": "threshold_mmol_l", "value_1": "tre"}, "inte ett tal"),
        ({"rule_1": "D1", "param_1": "", "value_1": "3"}, "ange regel, parameter och värde"),
        ({"rule_1": "D1", "param_1": "threshold_mmol_l", "value_1": "nan"}, "ogiltigt förslag"),
        ({"rule_1": "d1", "param_1": "threshold_mmol_l", "value_1": "3"}, "ogiltigt förslag"),
        ({"days": "91"}, ""),
    ],
)
def test_page_form_refuses_bad_rows(
    client: TestClient, auth: Auth, seed: Seed, form: dict[str, str], message: str
) -> None:
    data = {"unit": str(seed.units["MON-SYD"]), "days": "7", **form}
    r = client.post("/ui/analytics/replays", headers=auth(NURSE_SYD), data=data, follow_redirects=False)
    assert r.status_code == 422
    assert message in r.text
    with psycopg.connect(seed.url) as conn:
        assert conn.execute("SELECT count(*) FROM replay_request").fetchone() == (0,)


def test_a_unit_cannot_pile_up_requests(client: TestClient, auth: Auth, seed: Seed) -> None:
    unit = seed.units["MON-SYD"]
    for _ in range(5):
        assert _post(client, auth, unit, {"days": 1, "proposal": {}}).status_code == 202
    r = _post(client, auth, unit, {"days": 1, "proposal": {}})
    assert r.status_code == 429
    assert "queued or running" in r.json()["detail"]
    assert process_one(seed.url) is True  # one finishes: room for one more
    assert _post(client, auth, unit, {"days": 1, "proposal": {}}).status_code == 202


# ---- validation and access, on one seeded database for the module ----


@pytest.fixture
def shared(shared_client: TestClient, shared_auth: Auth, shared_seed: Seed) -> tuple[TestClient, Auth, Seed]:
    return shared_client, shared_auth, shared_seed


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"days": 0, "proposal": PROPOSAL}, ["body", "days"]),
        ({"days": 91, "proposal": PROPOSAL}, ["body", "days"]),
        ({"days": "thirty", "proposal": PROPOSAL}, ["body", "days"]),
        ({"proposal": PROPOSAL}, ["body", "days"]),
        ({"days": 7, "proposal": {"d1": {"threshold_mmol_l": 3}}}, ["body", "proposal", "d1", "[key]"]),
        ({"days": 7, "proposal": {"routing": {"D6": 1}}}, ["body", "proposal", "routing", "[key]"]),
        ({"days": 7, "proposal": {"D1": {"Threshold": 3}}}, ["body", "proposal", "D1", "Threshold", "[key]"]),
        ({"days": 7, "proposal": {"D1": {"x" * 65: 3}}}, ["body", "proposal", "D1", "x" * 65, "[key]"]),
        ({"days": 7, "proposal": {"D1": {"threshold_mmol_l": "3.5"}}}, ["body", "proposal", "D1", "threshold_mmol_l"]),
        ({"days": 7, "proposal": {"D1": {"threshold_mmol_l": True}}}, ["body", "proposal", "D1", "threshold_mmol_l"]),
        ({"days": 7, "proposal": {"D1": {}}}, ["body", "proposal"]),
        ({"days": 7, "condition": "gout", "proposal": {}}, ["body", "condition"]),
        ({"days": 7, "proposal": {}, "extra": 1}, ["body", "extra"]),
    ],
)
def test_bad_bodies_are_422(shared: tuple[TestClient, Auth, Seed], body: dict[str, Any], loc: list[str]) -> None:
    client, auth, seed = shared
    r = _post(client, auth, seed.units["MON-SYD"], body)
    assert r.status_code == 422, r.text
    assert loc in [e["loc"] for e in r.json()["detail"]]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_raw_json_are_422(shared: tuple[TestClient, Auth, Seed], raw: str) -> None:
    client, auth, seed = shared
    body = '{"days": 7, "proposal": {"D1": {"threshold_mmol_l": ' + raw + "}}}"
    r = client.post(
        f"/api/v1/units/{seed.units['MON-SYD']}/replays",
        headers={**auth(NURSE_SYD), "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "proposal", "D1", "threshold_mmol_l"]


@pytest.mark.parametrize(
    ("who", "expected"),
    [(NURSE_SYD, 202), (PHYSICIAN, 202), (NURSE, 404), (ADMIN, 403), (AUDITOR, 403), (None, 401)],
    ids=["nurse", "physician", "nurse_other_unit", "admin", "auditor", "anonymous"],
)
def test_who_may_queue_list_and_read(shared: tuple[TestClient, Auth, Seed], who: str | None, expected: int) -> None:
    client, auth, seed = shared
    unit = seed.units["MON-SYD"]
    headers = auth(who) if who else {}
    r = client.post(f"/api/v1/units/{unit}/replays", headers=headers, json={"days": 1, "proposal": PROPOSAL})
    assert r.status_code == expected, r.text
    listed = client.get(f"/api/v1/units/{unit}/replays", headers=headers)
    assert listed.status_code == (200 if expected == 202 else expected)
    if expected == 404:
        assert r.json()["detail"] == "care unit not found"
        assert listed.json()["detail"] == "care unit not found"
    # Another unit's request is as unknown as one that does not exist.
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT max(id) FROM replay_request WHERE unit_id = %s", (unit,)).fetchone()
    assert row is not None
    if row[0] is not None:
        one = client.get(f"/api/v1/replays/{row[0]}", headers=headers)
        assert one.status_code == (200 if expected == 202 else expected)
        if expected == 404:
            assert one.json()["detail"] == "replay not found"
        page = client.get(f"/ui/analytics/replays/{row[0]}", headers=headers, follow_redirects=False)
        assert page.status_code == {202: 200, 404: 404, 403: 403, 401: 303}[expected]


def test_unknown_unit_and_replay_are_404(shared: tuple[TestClient, Auth, Seed]) -> None:
    client, auth, _ = shared
    r = _post(client, auth, uuid.uuid4(), {"days": 7, "proposal": PROPOSAL})
    assert (r.status_code, r.json()["detail"]) == (404, "care unit not found")
    r = client.get("/api/v1/replays/999999", headers=auth(NURSE_SYD))
    assert (r.status_code, r.json()["detail"]) == (404, "replay not found")
    assert client.get("/api/v1/replays/0", headers=auth(NURSE_SYD)).status_code == 422
