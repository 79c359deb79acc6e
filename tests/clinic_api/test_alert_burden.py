"""Alert burden of a care unit: exact figures from alerts with known timestamps, the page
in Swedish with the same numbers, role and unit checks, the audit row, bad ``days``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from clinic_api.pages import _sv_num, _sv_pct
from tests.clinic_api.conftest import ADMIN, AUDITOR, NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


# The tests only read what the module fixture wrote: one seeded database for the module.
@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


@pytest.fixture(scope="module")
def syd(shared_seed: Seed) -> uuid.UUID:
    """MON-SYD with known alerts and findings: three active patients and an inactive one.

    The demo's own MON-SYD alert is removed so every figure below is known exactly; MON-NORD
    keeps its demo alerts, which must not leak into MON-SYD's figures.
    """
    unit = shared_seed.units["MON-SYD"]
    t = shared_seed.now - dt.timedelta(hours=2)  # every offset below is relative to t < now
    with psycopg.connect(shared_seed.url) as conn:
        conn.execute("DELETE FROM alert WHERE patient_id IN (SELECT id FROM patient WHERE unit_id = %s)", (unit,))
        pids = []
        for i, active in enumerate((True, True, False)):
            row = conn.execute(
                "INSERT INTO patient (pseudonym, display_name, unit_id, active) VALUES (%s, %s, %s, %s) RETURNING id",
                (f"P-BURDEN{i}", f"Testperson {i}", unit, active),
            ).fetchone()
            assert row is not None
            pids.append(row[0])
        a, b = pids[0], pids[1]

        def alert(
            pid: uuid.UUID,
            event_type: str,
            opened: dt.datetime,
            *,
            shown: bool = True,
            ack_after: dt.timedelta | None = None,
            reason: str | None = None,
            route: str = "staff",
        ) -> None:
            conn.execute(
                """INSERT INTO alert (patient_id, rule_id, event_type, severity, title, opened_at, route,
                                      shown_to_staff_at, status, acknowledged_at, resolved_at, resolution_reason)
                   VALUES (%s, 'R', %s, 'medium', 't', %s, %s, %s, %s, %s, %s, %s)""",
                (
                    pid,
                    event_type,
                    opened,
                    route,
                    opened if shown else None,
                    "resolved" if reason else ("acknowledged" if ack_after else "open"),
                    opened + ack_after if ack_after else None,
                    opened + 2 * DAY if reason else None,
                    reason,
                ),
            )

        # Hypoglycaemia: four reach staff in 30 days (two in 7), acknowledged after 10, 20 and
        # 60 minutes; two closed without action; one more opened and not confirmed.
        alert(a, "hypoglycaemia", t - DAY, ack_after=10 * MIN, reason="no_action_needed")
        alert(a, "hypoglycaemia", t - 2 * DAY, ack_after=20 * MIN, reason="contacted_patient")
        alert(b, "hypoglycaemia", t - 10 * DAY, ack_after=60 * MIN, reason="measurement_error")
        alert(b, "hypoglycaemia", t - 20 * DAY)
        alert(b, "hypoglycaemia", t - 4 * DAY, shown=False, reason="not_confirmed")
        # Fluid retention: one in the window (acknowledged after 5 minutes), one 40 days ago.
        alert(a, "fluid_retention", t - 3 * DAY, ack_after=5 * MIN, reason="referred")
        alert(b, "fluid_retention", t - 40 * DAY, ack_after=MIN)
        # Hypoxaemia: never reached staff; one not confirmed in the window, one before it.
        alert(a, "hypoxaemia", t - 5 * DAY, shown=False, reason="not_confirmed")
        alert(b, "hypoxaemia", t - 45 * DAY, shown=False, reason="not_confirmed")
        # The patient's own work: never in the staff queue, counted nowhere.
        alert(a, "missing_data", t - DAY, shown=False, route="patient")

        for pid, rule, route, first in (
            (a, "D1", "staff", t - DAY),
            (a, "D1", "staff", t - 2 * DAY),
            (b, "D1", "staff", t - 10 * DAY),
            (b, "D1", "patient", t - 3 * DAY),
            (a, "HF1", "staff", t - 5 * DAY),
            (b, "HF1", "staff", t - 35 * DAY),
        ):
            conn.execute(
                """INSERT INTO alert_finding (patient_id, rule_id, route, severity, first_at, last_at, cleared_at)
                   VALUES (%s, %s, %s, 'medium', %s, %s, %s)""",
                (pid, rule, route, first, first + MIN, first + MIN),
            )
    return unit


def _get(client: TestClient, auth: Auth, unit: uuid.UUID, who: str = NURSE_SYD, **params: Any) -> Any:
    r = client.get(f"/api/v1/units/{unit}/alert-burden", headers=auth(who), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_thirty_days_exact_figures(client: TestClient, auth: Auth, syd: uuid.UUID) -> None:
    out = _get(client, auth, syd)
    assert out["unit_id"] == str(syd)
    assert out["days"] == 30
    start, end = dt.datetime.fromisoformat(out["from"]), dt.datetime.fromisoformat(out["to"])
    assert end - start == 30 * DAY
    # The demo patient Greta and two of the three test patients are active.
    assert out["patients"] == 3
    assert out["patient_months"] == 3.0
    assert out["total"] == {
        "alerts": 5,
        "alerts_per_patient_month": 1.667,
        "acknowledged_share": 0.8,
        "resolved_no_action_share": 0.4,
        "median_minutes_to_acknowledge": 15.0,  # of 5, 10, 20, 60
        "not_confirmed": 2,
    }
    assert out["by_event_type"] == [
        {
            "event_type": "hypoglycaemia",
            "alerts": 4,
            "alerts_per_patient_month": 1.333,
            "acknowledged_share": 0.75,
            "resolved_no_action_share": 0.5,
            "median_minutes_to_acknowledge": 20.0,
            "not_confirmed": 1,
        },
        {
            "event_type": "fluid_retention",
            "alerts": 1,
            "alerts_per_patient_month": 0.333,
            "acknowledged_share": 1.0,
            "resolved_no_action_share": 0.0,
            "median_minutes_to_acknowledge": 5.0,
            "not_confirmed": 0,
        },
        {
            "event_type": "hypoxaemia",
            "alerts": 0,
            "alerts_per_patient_month": 0.0,
            "acknowledged_share": None,
            "resolved_no_action_share": None,
            "median_minutes_to_acknowledge": None,
            "not_confirmed": 1,
        },
    ]
    assert out["by_rule"] == [
        {"rule_id": "D1", "route": "staff", "episodes": 3, "episodes_per_patient_month": 1.0},
        {"rule_id": "D1", "route": "patient", "episodes": 1, "episodes_per_patient_month": 0.333},
        {"rule_id": "HF1", "route": "staff", "episodes": 1, "episodes_per_patient_month": 0.333},
    ]


def test_seven_days(client: TestClient, auth: Auth, syd: uuid.UUID) -> None:
    out = _get(client, auth, syd, days=7)
    assert out["patient_months"] == 0.7  # 3 patients x 7 / 30
    assert out["total"]["alerts"] == 3
    assert out["total"]["alerts_per_patient_month"] == 4.286
    assert out["total"]["not_confirmed"] == 2
    hypo = out["by_event_type"][0]
    assert hypo["event_type"] == "hypoglycaemia"
    assert (hypo["alerts"], hypo["alerts_per_patient_month"]) == (2, 2.857)
    assert hypo["median_minutes_to_acknowledge"] == 15.0  # of 10 and 20
    assert [(r["rule_id"], r["route"], r["episodes"]) for r in out["by_rule"]] == [
        ("D1", "staff", 2),
        ("D1", "patient", 1),
        ("HF1", "staff", 1),
    ]


def test_nothing_in_the_window(client: TestClient, auth: Auth, syd: uuid.UUID) -> None:
    out = _get(client, auth, syd, days=1)
    assert out["by_event_type"] == []
    assert out["by_rule"] == []
    assert out["total"] == {
        "alerts": 0,
        "alerts_per_patient_month": 0.0,
        "acknowledged_share": None,
        "resolved_no_action_share": None,
        "median_minutes_to_acknowledge": None,
        "not_confirmed": 0,
    }


def test_other_units_alerts_stay_out(client: TestClient, auth: Auth, shared_seed: Seed, syd: uuid.UUID) -> None:
    # The physician works in both units: MON-NORD's demo alerts (event types named by rule)
    # are in MON-NORD's figures only.
    nord = _get(client, auth, shared_seed.units["MON-NORD"], who=PHYSICIAN)
    assert {e["event_type"] for e in nord["by_event_type"]} == {"HF1", "D1", "A1", "H1"}
    assert nord["total"]["alerts"] == 4
    assert _get(client, auth, syd, who=PHYSICIAN)["total"]["alerts"] == 5


def _audit_rows(seed: Seed, resource: str) -> int:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE resource = %s", (resource,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("who", "expected"),
    [(NURSE_SYD, 200), (PHYSICIAN, 200), (NURSE, 404), (ADMIN, 403), (AUDITOR, 403), (None, 401)],
    ids=["nurse", "physician", "nurse_other_unit", "admin", "auditor", "anonymous"],
)
def test_who_may_read_and_audit(
    client: TestClient, auth: Auth, shared_seed: Seed, syd: uuid.UUID, who: str | None, expected: int
) -> None:
    resource = f"care_unit/{syd}/alert-burden"
    before = _audit_rows(shared_seed, resource)
    r = client.get(f"/api/v1/units/{syd}/alert-burden", headers=auth(who) if who else {})
    assert r.status_code == expected, r.text
    assert _audit_rows(shared_seed, resource) == before + (1 if expected == 200 else 0)
    if expected == 404:
        assert r.json()["detail"] == "care unit not found"  # the same answer as for a unit that does not exist


def test_unknown_unit_is_404(client: TestClient, auth: Auth) -> None:
    r = client.get(f"/api/v1/units/{uuid.uuid4()}/alert-burden", headers=auth(NURSE_SYD))
    assert r.status_code == 404
    assert r.json()["detail"] == "care unit not found"


@pytest.mark.parametrize("days", ["0", "366", "-5", "thirty", "7.5"])
def test_bad_days_is_422(client: TestClient, auth: Auth, syd: uuid.UUID, days: str) -> None:
    r = client.get(f"/api/v1/units/{syd}/alert-burden", headers=auth(NURSE_SYD), params={"days": days})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", "days"]
    assert err["msg"]
    assert days not in str(r.json())  # the input is not echoed


def test_page_in_swedish_with_the_api_figures(client: TestClient, auth: Auth, syd: uuid.UUID) -> None:
    page = client.get("/ui/analytics", headers=auth(NURSE_SYD), params={"unit": str(syd), "days": 30})
    assert page.status_code == 200
    html = page.text
    for heading in (
        "Larm per patientmånad",
        "Andel kvitterade",
        "Andel avslutade utan åtgärd",
        "Median tid till kvittering",
        "Ej bekräftade vid ommätning",
        "Per händelsetyp",
        "Per regel",
    ):
        assert f">{heading}<" in html
    for title in ("Lågt blodsocker", "Vätskeansamling / viktuppgång", "Låg syremättnad"):  # EventType.label_sv
        assert f">{title}<" in html
    # Hypoglycaemia: 1.333 alerts per patient-month, 75 % acknowledged, median 20 minutes;
    # the unit: 1.667 per patient-month, 80 % acknowledged.
    assert "<td>1,3</td>" in html
    assert "<td>1,7</td>" in html
    assert "<td>75 %</td>" in html
    assert "<td>80 %</td>" in html
    assert "<td>20,0 min</td>" in html
    assert "3,0 patientmånader" in html
    assert '<option value="30" selected>' in html
    assert '<a href="/ui/analytics">Larmbelastning</a>' in html


def test_page_empty_state(client: TestClient, auth: Auth, syd: uuid.UUID) -> None:
    page = client.get("/ui/analytics", headers=auth(NURSE_SYD), params={"days": 1})
    assert page.status_code == 200
    assert "Inga larm nådde monitoreringsteamet" in page.text
    assert "Andel kvitterade" not in page.text


def test_page_units_and_refusals(client: TestClient, auth: Auth, shared_seed: Seed, syd: uuid.UUID) -> None:
    # The physician chooses between both units; the first by code is shown by default.
    page = client.get("/ui/analytics", headers=auth(PHYSICIAN))
    assert page.status_code == 200
    assert "(MON-NORD)</option>" in page.text
    assert "(MON-SYD)</option>" in page.text
    assert f'<option value="{shared_seed.units["MON-NORD"]}" selected>' in page.text
    assert client.get("/ui/analytics", headers=auth(NURSE), params={"unit": str(syd)}).status_code == 404
    denied = client.get("/ui/analytics", headers=auth(ADMIN))
    assert denied.status_code == 403
    assert "Larmbelastning" not in denied.text  # no menu entry without a clinical role
    assert client.get("/ui/analytics", headers=auth(NURSE_SYD), params={"days": 0}).status_code == 422


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(2.4, 1, "2,4"), (1.25, 1, "1,3"), (1234.5, 1, "1\u00a0234,5"), (0, 1, "0,0"), (None, 1, "–"), (7, 0, "7")],
)
def test_swedish_numbers(value: float | None, decimals: int, text: str) -> None:
    assert _sv_num(value, decimals) == text


@pytest.mark.parametrize(("share", "text"), [(0.75, "75 %"), (2 / 3, "67 %"), (1.0, "100 %"), (None, "–")])
def test_swedish_percent(share: float | None, text: str) -> None:
    assert _sv_pct(share) == text
