"""The queue page and its polling fragment: filters together, order, what a card shows.

Alerts are inserted with known status, severity, unit, assignment and escalation next to
the demo seed's own (HF1, D1, A1, H1 in MON-NORD; C1 in MON-SYD).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from clinic_api import labels, pages, queue_view
from tests.clinic_api.conftest import ADMIN, NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
CARD_ID = re.compile(r'<li class="alert[^"]*" id="larm-\d+" data-alert-id="(\d+)"')


@dataclass
class Queue:
    seed: Seed
    ids: dict[str, int]  # inserted alerts by name; demo alerts by rule id


def _staff_id(conn: psycopg.Connection[Any], subject: str) -> uuid.UUID:
    row = conn.execute("SELECT id FROM staff WHERE subject = %s", (subject,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _insert(conn: psycopg.Connection[Any], patient: uuid.UUID, event: str, **kw: Any) -> int:
    now = dt.datetime.now(dt.UTC)
    opened = now - dt.timedelta(minutes=kw.pop("age_min"))
    cols = {
        "patient_id": patient,
        "rule_id": kw.pop("rule", "X1"),
        "event_type": event,
        "condition": kw.pop("condition", None),
        "status": kw.pop("status", "open"),
        "severity": kw.pop("severity"),
        "title": kw.pop("title", event),
        "opened_at": opened,
        "updated_at": opened,
        "last_fired_at": opened,
        "shown_to_staff_at": kw.pop("shown", opened),
        "evidence": Jsonb(kw.pop("evidence", {})),
        **kw,
    }
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    row = conn.execute(f"INSERT INTO alert ({names}) VALUES ({marks}) RETURNING id", list(cols.values())).fetchone()
    assert row is not None
    return int(row[0])


SPO2_EVIDENCE = {
    "rule": "C1",
    "readings": [
        {"series": "spo2.spo2", "at": "2026-12-03T08:00:00+00:00", "value": 90.0},
        {"series": "spo2.pulse", "at": "2026-12-03T08:00:00+00:00", "value": 96.0},
        {"series": "spo2.spo2", "at": "2026-12-03T09:00:00+00:00", "value": 86.0},
    ],
    "rules": [{"rule": "C1"}, {"rule": "C3"}, {"rule": "C1"}],
}
BP_EVIDENCE = {
    "rule": "H3",
    "readings": [
        {"series": "blood_pressure.systolic", "at": "2026-12-03T08:00:00+00:00", "value": 178.0},
        {"series": "blood_pressure.diastolic", "at": "2026-12-03T08:00:00+00:00", "value": 108.0},
        {"series": "blood_pressure.systolic", "at": "2026-12-03T08:05:00+00:00", "value": 182.0},
        {"series": "blood_pressure.diastolic", "at": "2026-12-03T08:05:00+00:00", "value": 112.0},
    ],
}


@pytest.fixture(scope="module")
def queue(shared_seed: Seed) -> Queue:
    p = shared_seed.patients
    with psycopg.connect(shared_seed.url) as conn:
        erik, anna = _staff_id(conn, PHYSICIAN), _staff_id(conn, NURSE)
        ids = {
            r: int(i)
            for r, i in conn.execute("SELECT rule_id, id FROM alert WHERE rule_id IN ('HF1','D1','A1','H1','C1')")
        }
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
        ids |= {
            "crit_mine": _insert(
                conn,
                p["P-DEMO0001"],
                "hypoxaemia",
                severity="critical",
                age_min=10,
                condition="heart_failure",
                assigned_to=erik,
                rule="C1",
                title="Låg syremättnad",
                evidence=SPO2_EVIDENCE,
            ),
            "high_esc_me": _insert(
                conn, p["P-DEMO0001"], "pulse", severity="high", status="acknowledged", age_min=60, escalated_to=erik
            ),
            "crit_syd_role": _insert(
                conn,
                p["P-DEMO0004"],
                "bp_crisis",
                severity="critical",
                age_min=150,
                escalated_to_role="physician",
                rule="H3",
                evidence=BP_EVIDENCE,
            ),
            "low_snoozed_mine": _insert(
                conn,
                p["P-DEMO0002"],
                "missing_data",
                severity="low",
                status="snoozed",
                snoozed_until=later,
                age_min=300,
                assigned_to=erik,
            ),
            "never_shown": _insert(conn, p["P-DEMO0002"], "hypoglycaemia", severity="critical", age_min=5, shown=None),
            "resolved_mine": _insert(
                conn, p["P-DEMO0003"], "pef_drop_old", severity="high", status="resolved", age_min=90, assigned_to=erik
            ),
            "med_esc_nurse": _insert(
                conn,
                p["P-DEMO0003"],
                "asthma_exacerbation",
                severity="medium",
                age_min=30,
                escalated_to=anna,
                escalated_to_role="nurse",
            ),
            "awaiting": _insert(
                conn,
                p["P-DEMO0004"],
                "hypoxaemia",
                severity="high",
                status="awaiting_confirmation",
                age_min=3,
                shown=None,
                confirm_by=later,
            ),
        }
    return Queue(shared_seed, ids)


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


def _ids(html: str) -> list[int]:
    return [int(m) for m in CARD_ID.findall(html)]


def _fragment(client: TestClient, auth: Auth, who: str, params: dict[str, Any] | None = None) -> list[int]:
    r = client.get("/ui/alerts/fragment", headers=auth(who), params=params or {})
    assert r.status_code == 200, r.text
    return _ids(r.text)


def _names(q: Queue, ids: list[int]) -> list[str]:
    by_id = {v: k for k, v in q.ids.items()}
    return [by_id.get(i, f"?{i}") for i in ids]


@pytest.mark.parametrize(
    ("who", "params", "expected"),
    [
        # Default: open and acknowledged, critical first, then oldest first within a severity.
        (
            PHYSICIAN,
            {},
            ["crit_syd_role", "crit_mine", "C1", "high_esc_me", "HF1", "D1", "med_esc_nurse", "H1", "A1"],
        ),
        (PHYSICIAN, {"mine": "1"}, ["crit_mine"]),
        (PHYSICIAN, {"mine": "1", "status": "snoozed"}, ["low_snoozed_mine"]),
        (PHYSICIAN, {"mine": "1", "status": ["snoozed", "open", "acknowledged"]}, ["crit_mine", "low_snoozed_mine"]),
        # Escalated to me by name, or to my role.
        (PHYSICIAN, {"escalated": "1"}, ["crit_syd_role", "high_esc_me"]),
        (PHYSICIAN, {"escalated": "1", "severity": "critical"}, ["crit_syd_role"]),
        (PHYSICIAN, {"escalated": "1", "mine": "1"}, []),
        (PHYSICIAN, {"severity": "critical", "condition": "heart_failure"}, ["crit_mine"]),
        (PHYSICIAN, {"status": "acknowledged"}, ["high_esc_me"]),
        (PHYSICIAN, {"severity": "low", "status": ["open", "snoozed"]}, ["H1", "A1", "low_snoozed_mine"]),
        # Never shown to staff (awaiting a repeat, or held back): not in any queue.
        (PHYSICIAN, {"status": "awaiting_confirmation"}, []),
        (NURSE, {"escalated": "1"}, ["med_esc_nurse"]),
        (NURSE, {"severity": "critical"}, ["crit_mine"]),  # MON-SYD's critical one is not hers
        (NURSE_SYD, {"escalated": "1"}, []),  # escalated to physicians, not to nurses
        (NURSE_SYD, {}, ["crit_syd_role", "C1"]),
    ],
)
def test_filters_combine(
    client: TestClient, auth: Auth, queue: Queue, who: str, params: dict[str, Any], expected: list[str]
) -> None:
    assert _names(queue, _fragment(client, auth, who, params)) == expected


def test_unit_filter_keeps_to_my_units(client: TestClient, auth: Auth, queue: Queue) -> None:
    nord, syd = str(queue.seed.units["MON-NORD"]), str(queue.seed.units["MON-SYD"])
    assert _names(queue, _fragment(client, auth, PHYSICIAN, {"unit": syd})) == ["crit_syd_role", "C1"]
    assert _names(queue, _fragment(client, auth, PHYSICIAN, {"unit": nord, "escalated": "1"})) == ["high_esc_me"]
    # Another unit's id answers an empty queue, never that unit's alerts.
    assert _fragment(client, auth, NURSE, {"unit": syd}) == []


def test_page_and_fragment_show_the_same_cards(client: TestClient, auth: Auth, queue: Queue) -> None:
    params = {"status": ["open", "snoozed"], "mine": "1"}
    page = client.get("/ui/alerts", headers=auth(PHYSICIAN), params=params)
    assert page.status_code == 200
    assert _ids(page.text) == _fragment(client, auth, PHYSICIAN, params)
    # The page polls with its own filters, in canonical order, and actions come back to them.
    assert 'data-fragment-url="/ui/alerts/fragment?status=open&amp;status=snoozed&amp;mine=1"' in page.text
    assert 'name="back" value="/ui/alerts?status=open&amp;status=snoozed&amp;mine=1"' in page.text
    assert re.search(r'value="snoozed"\s+checked', page.text)
    assert re.search(r'value="acknowledged"\s+>', page.text)  # unchecked
    assert "http-equiv" not in page.text  # no more page reloads
    assert '<script src="/static/queue.js" defer></script>' in page.text
    assert 'href="/ui/alerts?status=open&amp;status=snoozed&amp;mine=1">Uppdatera</a>' in page.text


def test_fragment_is_only_cards_not_cached_and_audited(client: TestClient, auth: Auth, queue: Queue) -> None:
    r = client.get("/ui/alerts/fragment", headers=auth(NURSE), params={"severity": "critical"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.text.lstrip().startswith("<li")
    assert "<html" not in r.text
    assert 'name="severity"' not in r.text  # no filter form, only the cards
    with psycopg.connect(queue.seed.url) as conn:
        row = conn.execute(
            "SELECT detail FROM audit_log WHERE resource = 'alert_queue' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    assert row[0]["poll"] is True
    assert row[0]["patients"] == [str(queue.seed.patients["P-DEMO0001"])]


def test_fragment_refuses_admin_and_strangers(client: TestClient, auth: Auth, queue: Queue) -> None:
    assert client.get("/ui/alerts/fragment", headers=auth(ADMIN)).status_code == 403
    anonymous = client.get("/ui/alerts/fragment", follow_redirects=False)
    assert anonymous.status_code == 303  # to the login page, like every page


@pytest.mark.parametrize(
    "params",
    [{"status": "resolved"}, {"status": "closed"}, {"severity": "urgent"}, {"unit": "x"}, {"condition": "flu"}],
)
def test_bad_filters_are_422(client: TestClient, auth: Auth, queue: Queue, params: dict[str, str]) -> None:
    for path in ("/ui/alerts", "/ui/alerts/fragment"):
        r = client.get(path, headers=auth(NURSE), params=params)
        assert r.status_code == 422, (path, params)


def _card(html: str, alert_id: int) -> str:
    start = html.index(f'data-alert-id="{alert_id}"')
    return html[start : html.index("</article>", start)]


def test_card_shows_event_value_trend_why_age_and_links(client: TestClient, auth: Auth, queue: Queue) -> None:
    html = client.get("/ui/alerts/fragment", headers=auth(PHYSICIAN)).text
    aid = queue.ids["crit_mine"]
    card = _card(html, aid)
    assert '<span class="badge sev-critical">Kritisk</span>' in card
    assert '<span class="status st-open">Öppet</span>' in card
    assert ">Låg syremättnad</h2>" in card  # EventType.HYPOXAEMIA.label_sv
    assert "Syremättnad (SpO2) <strong>86\u00a0%</strong>" in card  # the newest SpO2, not the pulse
    trend = '<span class="trend" aria-hidden="true" title="sjunkande">↓</span><span class="sr">, sjunkande</span>'
    assert trend in card
    why = f"Varför:</span> {labels.RULE['C1']}; {labels.RULE['C3']}"
    assert why in card
    assert labels.RULE["C3"].startswith("Sjunkande syremättnad")
    assert ">för 10 min sedan</time>" in card
    assert f'href="/ui/patients/{queue.seed.patients["P-DEMO0001"]}">P-DEMO0001</a>' in card
    assert f'href="/ui/alerts/{aid}" aria-label="Öppna larm: Låg syremättnad, P-DEMO0001">Öppna</a>' in card
    assert f'href="/ui/alerts/{aid}#avsluta"' in card
    assert "/resolve" not in card  # closing needs the detail page's reason, never one click
    assert f'action="/ui/alerts/{aid}/acknowledge"' in card
    assert f'action="/ui/alerts/{aid}/comment"' in card
    assert "Tilldelat: Läkare Erik Demo" in card

    bp = _card(html, queue.ids["crit_syd_role"])
    assert "Blodtryck <strong>182/112\u00a0mmHg</strong>" in bp
    assert "mm[Hg]" not in bp
    assert 'title="stigande">↑</span>' in bp
    assert "Eskalerat till: Läkare" in bp
    assert ">för 2 h 30 min sedan</time>" in bp

    acked = _card(html, queue.ids["high_esc_me"])
    assert "Kvitterat" in acked
    assert "/acknowledge" not in acked  # nothing to acknowledge twice
    assert "Eskalerat till: Läkare Erik Demo" in acked


def test_card_version_ignores_age_but_not_changes(client: TestClient, auth: Auth, queue: Queue) -> None:
    aid = queue.ids["med_esc_nurse"]

    def version() -> str:
        card = _card(client.get("/ui/alerts/fragment", headers=auth(NURSE)).text, aid)
        m = re.search(r'data-version="([0-9a-f]+)"', card)
        assert m is not None
        return m.group(1)

    before = version()
    assert version() == before
    with psycopg.connect(queue.seed.url) as conn:
        conn.execute("UPDATE alert SET severity = 'high' WHERE id = %s", (aid,))
    try:
        assert version() != before
    finally:
        with psycopg.connect(queue.seed.url) as conn:
            conn.execute("UPDATE alert SET severity = 'medium' WHERE id = %s", (aid,))


# ---- the card's pure parts ----


def test_trend_from_the_last_two_values() -> None:
    assert queue_view.trend(3.1, 4.2) == "up"
    assert queue_view.trend(4.2, 3.1) == "down"
    assert queue_view.trend(85.2, 85.2) == "flat"
    assert queue_view.trend(85.2, 85.25) == "flat"  # below the 0.5 % noise band
    assert queue_view.trend("LOW", 3.0) is None  # a censored reading has no direction
    assert queue_view.trend(None, 3.0) is None


def test_latest_reading_and_why() -> None:
    assert queue_view.latest({}) is None
    one = queue_view.latest({"readings": [{"series": "weight", "at": "2026-12-01T07:00:00+00:00", "value": 84.35}]})
    assert one == queue_view.Latest("Vikt", "84,4\u00a0kg", None)
    cgm = {"series": "glucose_cgm.glucose_interstitial", "at": "2026-12-01T07:00:00+00:00", "value": "LOW"}
    low = queue_view.latest({"readings": [cgm]})
    assert low == queue_view.Latest("Glukos (CGM)", "under mätområdet", None)
    assert queue_view.why({"rules": [{"rule": "D2"}, {"rule": "D1"}]}, "D2") == [labels.RULE["D2"], labels.RULE["D1"]]
    assert queue_view.why({}, "ZZ9") == ["ZZ9"]  # an unknown rule shows its id, never nothing


def test_canonical_filter_url() -> None:
    assert queue_view.Filters().url() == "/ui/alerts"
    unit = uuid.UUID(int=1)
    f = queue_view.Filters(statuses=("open",), severity="high", unit=unit, mine=True, escalated=True)
    assert f.url("/ui/alerts/fragment") == (
        f"/ui/alerts/fragment?status=open&severity=high&unit={unit}&mine=1&escalated=1"
    )


def test_ago_in_swedish() -> None:
    assert labels.ago(20) == "nyss"
    assert labels.ago(12 * 60 + 5) == "för 12 min sedan"
    assert labels.ago(3 * 3600) == "för 3 h sedan"
    assert labels.ago(3 * 3600 + 5 * 60) == "för 3 h 5 min sedan"
    assert labels.ago(2 * 86400 + 4 * 3600) == "för 2 dygn 4 h sedan"
    assert labels.ago(None) == ""
    assert labels.reading(142.4, "mm[Hg]") == "142\u00a0mmHg"
    assert labels.reading(37.85, "Cel") == "37,9\u00a0°C"


def test_cached_cards_are_the_cards_rendered_afresh(client: TestClient, auth: Auth, queue: Queue) -> None:
    """Cards are rendered once per content (pages.card_html): a cached answer is byte for byte
    what a fresh render gives, and a change to the alert renders its card anew."""
    pages._CARD_CACHE.clear()
    first = client.get("/ui/alerts/fragment", headers=auth(PHYSICIAN)).text
    cached = len(pages._CARD_CACHE)
    assert cached, "the cards went through the cache"
    again = client.get("/ui/alerts/fragment", headers=auth(PHYSICIAN)).text
    # The second answer came from the cache (a card whose age just passed a minute may not).
    assert len(pages._CARD_CACHE) <= cached + cached // 2
    pages._CARD_CACHE.clear()
    fresh = client.get("/ui/alerts/fragment", headers=auth(PHYSICIAN)).text
    strip = re.compile(r"för \d+ min sedan|nyss")  # the age may move on between requests
    assert strip.sub("", first) == strip.sub("", again) == strip.sub("", fresh)
    aid = queue.ids["crit_mine"]
    assert client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=auth(PHYSICIAN), json={}).status_code == 200
    after = client.get("/ui/alerts/fragment", headers=auth(PHYSICIAN), params={"status": "acknowledged"}).text
    assert "Kvittera larm" not in _card(after, aid)  # the acknowledged card, not the cached open one
    assert "Kvittera larm" in _card(fresh, aid)
