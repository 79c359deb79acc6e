"""The patient page's charts against a seeded database: care-plan thresholds, markers at the
event's time, gaps, hover values in local time, the data tables, AGP and the ESH BP week."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import psycopg
from psycopg.types.json import Jsonb

from clinic_api.charts import HEIGHT, PAD_B, PAD_L, PAD_R, PAD_T, WIDTH
from clinic_api.labels import MONTHS, TZ
from tests.clinic_api.conftest import NURSE, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]


def _svg(html: str, component: str) -> ET.Element:
    fig = html.index(f'id="chart-{component}"')
    a = html.index("<svg", fig)
    b = html.index("</svg>", a) + len("</svg>")
    return ET.fromstring(html[a:b])


def _value_of_y(svg: ET.Element) -> Callable[[float], float]:
    """Invert the y scale from two labelled y ticks (their baseline is 5 units below the value)."""
    ticks = [
        (float(t.attrib["data-value"]), float(t.attrib["y"]) - 5)
        for t in svg.iter("text")
        if "yt" in t.get("class", "")
    ]
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    return lambda y: v0 + (y - y0) * (v1 - v0) / (y1 - y0)


def _x_of_time(end: dt.datetime, days: int) -> Callable[[dt.datetime], float]:
    plot_w = WIDTH - PAD_L - PAD_R
    t0 = (end - dt.timedelta(days=days)).timestamp()
    return lambda t: PAD_L + (t.timestamp() - t0) / (days * 86400) * plot_w


def test_d1_override_moves_the_line_to_4_and_says_vardplan(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0002"]
    before = client.get(f"/ui/patients/{pid}", headers=auth(NURSE))
    assert before.status_code == 200
    line = next(e for e in _svg(before.text, "glucose_interstitial").iter("line") if e.get("data-rule") == "D1")
    assert line.get("data-value") == "3.9"
    assert line.get("data-source") == "default"

    plan = {"conditions": ["diabetes_t1"], "thresholds": {"D1": {"threshold_mmol_l": 4.0}}}
    r = client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN), json=plan)
    assert r.status_code == 201, r.text
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE))
    svg = _svg(page.text, "glucose_interstitial")
    d1 = [e for e in svg.iter("line") if e.get("data-rule") == "D1"]
    assert len(d1) == 1
    assert d1[0].get("data-source") == "care_plan"
    value_at = _value_of_y(svg)
    assert abs(value_at(float(d1[0].attrib["y1"])) - 4.0) < 0.01  # drawn at 4.0, not at 3.9
    d2 = next(e for e in svg.iter("line") if e.get("data-rule") == "D2")
    assert abs(value_at(float(d2.attrib["y1"])) - 3.0) < 0.01
    labels = [t.text or "" for t in svg.iter("text") if "thl" in t.get("class", "")]
    assert "D1 hypo nivå 1 4,0 (vårdplan)" in labels
    assert not any("3,9" in x and "D1" in x for x in labels)


def test_marker_at_the_event_time_not_when_opened(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0001"]  # HF1 (weight) and H1 (BP)
    event_at = seed.now - dt.timedelta(days=2, hours=3)
    with psycopg.connect(seed.url) as conn:
        conn.execute(
            "UPDATE alert SET evidence = evidence || %s WHERE patient_id = %s AND rule_id = 'HF1'",
            (Jsonb({"at": event_at.isoformat()}), pid),
        )
    before = dt.datetime.now(dt.UTC)
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE), params={"days": 7})
    after = dt.datetime.now(dt.UTC)
    svg = _svg(page.text, "weight")
    marks = [g for g in svg.iter("g") if g.get("class") == "mark"]
    assert len(marks) == 1
    mx = float(next(e for e in marks[0].iter("line")).attrib["x1"])
    lo, hi = _x_of_time(before, 7)(event_at), _x_of_time(after, 7)(event_at)
    assert lo - 0.2 <= mx <= hi + 0.2
    opened_x = _x_of_time(before, 7)(seed.now - dt.timedelta(hours=5))
    assert opened_x - mx > 50  # far from where the opening time would put it
    title = marks[0].find("title")
    assert title is not None
    assert title.text is not None
    local = event_at.astimezone(TZ)
    assert f"{local.day} {MONTHS[local.month - 1]} {local.year} {local:%H:%M}" in title.text


def test_nearby_markers_are_grouped_with_a_count(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0001"]
    with psycopg.connect(seed.url) as conn:
        for minutes, rule in ((0, "HF2"), (20, "HF3"), (40, "HF4")):
            at = seed.now - dt.timedelta(days=1, minutes=minutes)
            conn.execute(
                """INSERT INTO alert (patient_id, rule_id, event_type, condition, severity, title, opened_at,
                                      shown_to_staff_at, last_fired_at, evidence, updated_at)
                   VALUES (%s, %s, %s, 'heart_failure', 'high', 'Viktökning', %s, %s, %s, %s, %s)""",
                (pid, rule, rule, seed.now, seed.now, seed.now, Jsonb({"at": at.isoformat()}), seed.now),
            )
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE), params={"days": 7})
    marks = [g for g in _svg(page.text, "weight").iter("g") if g.get("class") == "mark"]
    counts = sorted(int(g.attrib["data-count"]) for g in marks)
    assert counts == [1, 3]
    grouped = next(g for g in marks if g.attrib["data-count"] == "3")
    assert [t.text for t in grouped.iter("text")] == ["3"]


def test_gap_breaks_the_line_and_hover_values_are_local(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0002"]
    with psycopg.connect(seed.url) as conn:
        conn.execute(
            "DELETE FROM observation WHERE patient_id = %s AND component = 'glucose_interstitial'"
            " AND measured_at BETWEEN %s AND %s",
            (pid, seed.now - dt.timedelta(days=3), seed.now - dt.timedelta(days=2, hours=18)),
        )
        last = conn.execute(
            "SELECT measured_at, value FROM observation WHERE patient_id = %s AND component = 'glucose_interstitial'"
            " ORDER BY measured_at DESC LIMIT 1",
            (pid,),
        ).fetchone()
    assert last is not None
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE), params={"days": 7})
    svg = _svg(page.text, "glucose_interstitial")
    assert len([e for e in svg.iter("polyline") if e.get("class") == "line"]) == 2
    local = last[0].astimezone(TZ)
    tip = f"{local.day} {MONTHS[local.month - 1]} {local:%H:%M}: {str(last[1]).replace('.', ',')} mmol/L"
    assert tip in [c.findtext("title") for c in svg.iter("circle")]
    # Every chart has the values as a table too, and its x axis has a Swedish date per tick.
    assert page.text.count("<details class='chart-table'>") >= 1
    xt = [t.text or "" for t in svg.iter("text") if "xt" in t.get("class", "")]
    assert len(xt) >= 3
    assert all(re.fullmatch(r"\d{1,2} (" + "|".join(MONTHS) + ")", x) for x in xt)


def test_agp_and_bp_week_on_the_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    cgm = client.get(f"/ui/patients/{seed.patients['P-DEMO0002']}", headers=auth(NURSE)).text
    assert "Glukosprofil (AGP)" in cgm
    for label in ("&lt; 3,0", "3,0–3,8", "3,9–10,0", "10,1–13,9", "&gt; 13,9"):
        assert f"{label}</th><td>" in cgm
    assert "mmol/mol" in cgm
    assert "Tid med aktiv sensor" in cgm
    agp = _svg(cgm, "agp")
    assert [p.get("class") for p in agp.iter("polygon")][:2] == ["agp-outer", "agp-inner"]
    bp = client.get(f"/ui/patients/{seed.patients['P-DEMO0001']}", headers=auth(NURSE)).text
    assert "Hemblodtryck, 7 dagar (ESH)" in bp
    assert re.search(r"<th scope=\"row\">Morgon</th><td>\d+ mmHg</td><td>\d+ mmHg</td><td>\d+</td>", bp)
    assert "mm[Hg]" not in bp
    assert re.search(r"Systoliskt blodtryck \(mmHg\) · \d+ värden", bp)


def test_single_reading_says_vaerde(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0003"]  # asthma: one PEF a day
    with psycopg.connect(seed.url) as conn:
        conn.execute(
            "DELETE FROM observation WHERE patient_id = %s AND component = 'pef' AND measured_at < %s",
            (pid, seed.now - dt.timedelta(hours=20)),
        )
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE)).text
    assert "PEF (L/min) · 1 värde<" in page
    svg = _svg(page, "pef")
    rules = sorted(e.get("data-rule") or "" for e in svg.iter("line") if "th" in (e.get("class") or "").split())
    assert rules == ["A1", "A2", "A3"]  # 80/60/50 % of the personal best 520
    values = sorted(float(e.attrib["data-value"]) for e in svg.iter("line") if e.get("data-rule"))
    assert values == [260.0, 312.0, 416.0]
    assert float(svg.attrib["viewBox"].split()[3]) == HEIGHT
    assert PAD_T + PAD_B < HEIGHT


def test_readings_of_someone_else_are_listed_in_swedish_and_left_out_of_the_charts(
    client: TestClient, auth: Auth, seed: Seed
) -> None:
    pid = seed.patients["P-DEMO0002"]
    at = seed.now - dt.timedelta(hours=3)
    with psycopg.connect(seed.url) as conn:
        gw, addr = conn.execute(
            "SELECT gateway_id, device_address FROM observation WHERE patient_id = %s LIMIT 1", (pid,)
        ).fetchone() or ("", "")
        rows = [
            (
                "weight",
                104.5,
                "kg",
                "probably_someone_else: weight +22.0 kg from the median 82.5 kg of the last 14 days",
            ),
            ("systolic", 151.0, "mm[Hg]", "other_user: measured by user 2 of a shared device, not the patient"),
        ]
        for comp, value, unit, reason in rows:
            conn.execute(
                "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,"
                " kind, value, unit, status, reject_reason, received_at)"
                " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, %s, 'rejected', %s, %s)",
                (comp, at, pid, gw, addr, "weight" if comp == "weight" else "blood_pressure", value, unit, reason, at),
            )
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE)).text
    section = page[page.index('id="h-not-counted"') :]
    assert "Vikt 104,5\xa0kg · <strong>Troligen någon annan på vågen</strong>" in section
    assert "Systoliskt blodtryck 151\xa0mmHg · <strong>Annan användare av delad mätare</strong>" in section
    # Not in the weight chart's data.
    if 'id="chart-weight"' in page:
        assert "104,5" not in page[page.index('id="chart-weight"') : page.index('id="h-not-counted"')]
