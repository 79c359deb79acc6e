"""The patient's monthly letter (PDF) and the same summary as FHIR: the numbers from the
pure function, the PDF read back with pdftotext, access, audit and month validation."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from clinic_api import letter_pdf
from clinic_api.labels import TZ
from clinic_api.patient_letter import Month, MonthError, paragraph, summarise, trend
from tests.clinic_api.conftest import AUDITOR, NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]
OCT = Month(2025, 10)  # the letter's month; September is "förra månaden"
TOLVAN = "P-DEMO0001"  # MON-NORD, schedule: blood pressure 2/day, weight 1/day
KARIN = "P-DEMO0002"  # MON-NORD, CGM, no schedule


@pytest.fixture(scope="module")
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture(scope="module")
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


def _local(month: Month, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, hour, minute, tzinfo=TZ)


def _insert(
    conn: psycopg.Connection[object],
    patient_id: uuid.UUID,
    kind: str,
    at: dt.datetime,
    values: dict[str, tuple[float, str]],
    status: str = "valid",
) -> None:
    rid = uuid.uuid4()
    for comp, (v, unit) in values.items():
        conn.execute(
            """INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,
                                        kind, value, unit, status, received_at)
               VALUES (%s, %s, %s, %s, 'gw-demo-001', 'AA:BB:CC:00:00:01', %s, %s, %s, %s, %s)""",
            (rid, comp, at, patient_id, kind, v, unit, status, at),
        )


@pytest.fixture(scope="module")
def seed(shared_seed: Seed) -> Seed:
    """Known readings in September and October 2025 for two demo patients."""
    sep = OCT.previous()
    tolvan, karin = shared_seed.patients[TOLVAN], shared_seed.patients[KARIN]
    with psycopg.connect(shared_seed.url) as conn:
        for d in range(1, 21):  # 40 BP readings: systolic 140/150 → mean 145
            _insert(
                conn,
                tolvan,
                "blood_pressure",
                _local(OCT, d, 7),
                {"systolic": (140, "mm[Hg]"), "diastolic": (90, "mm[Hg]"), "pulse": (70, "/min")},
            )
            _insert(
                conn,
                tolvan,
                "blood_pressure",
                _local(OCT, d, 19),
                {"systolic": (150, "mm[Hg]"), "diastolic": (80, "mm[Hg]"), "pulse": (74, "/min")},
            )
        # A rejected reading counts nowhere.
        _insert(conn, tolvan, "blood_pressure", _local(OCT, 21, 7), {"systolic": (290, "mm[Hg]")}, status="rejected")
        for d in range(1, 11):  # September: systolic 136, diastolic 85, pulse 84
            _insert(
                conn,
                tolvan,
                "blood_pressure",
                _local(sep, d, 7),
                {"systolic": (136, "mm[Hg]"), "diastolic": (85, "mm[Hg]"), "pulse": (84, "/min")},
            )
        for d in range(1, 11):  # 80.0 … 81.8 kg: mean 80.9, change +1.8
            _insert(conn, tolvan, "weight", _local(OCT, d, 7), {"weight": (80.0 + 0.2 * (d - 1), "kg")})
        _insert(conn, tolvan, "weight", _local(sep, 15, 7), {"weight": (78.0, "kg")})
        # 1 November 00:30 Stockholm is still 31 October in UTC: it belongs to November.
        _insert(conn, tolvan, "weight", _local(OCT.next(), 1, 0, 30), {"weight": (99.0, "kg")})
        t0 = _local(OCT, 5, 0)
        for i, g in enumerate([7.0] * 60 + [3.5] * 20 + [12.0] * 20):  # TIR 60 %, mean 7.3
            _insert(
                conn, karin, "glucose_cgm", t0 + dt.timedelta(minutes=5 * i), {"glucose_interstitial": (g, "mmol/L")}
            )
        for i in range(100):  # September: all 7.0, TIR 100 %
            _insert(
                conn,
                karin,
                "glucose_cgm",
                _local(sep, 5, 0) + dt.timedelta(minutes=5 * i),
                {"glucose_interstitial": (7.0, "mmol/L")},
            )
    return shared_seed


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, text=True)
    # Lines wrap wherever the layout put them; numbers and units are joined by no-break spaces.
    return re.sub(r"\s+", " ", out.stdout.replace("\u00a0", " "))


# --- the pure parts -----------------------------------------------------------------------


def test_month_parsing_and_bounds() -> None:
    now = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)  # already 1 January 2027 in Stockholm
    assert Month.last_complete(now) == Month(2026, 12)
    assert Month.last_complete(dt.datetime(2026, 1, 10, tzinfo=dt.UTC)) == Month(2025, 12)
    assert Month.parse("2026-03", now=now) == Month(2026, 3)
    assert Month.parse("2027-01", now=now) == Month(2027, 1)  # the current month, partial
    for bad, reason in (
        ("2026-13", "01-12"),
        ("26-03", "YYYY-MM"),
        ("2026-3", "YYYY-MM"),
        ("mars", "YYYY-MM"),
        ("202²-01", "YYYY-MM"),
        ("2027-02", "future"),
    ):
        with pytest.raises(MonthError, match=reason):
            Month.parse(bad, now=now)
    # Local midnights: summer time in October until the 26th, so the month starts at 22:00 UTC.
    assert OCT.start.astimezone(dt.UTC) == dt.datetime(2025, 9, 30, 22, tzinfo=dt.UTC)
    assert OCT.end.astimezone(dt.UTC) == dt.datetime(2025, 10, 31, 23, tzinfo=dt.UTC)
    assert OCT.days == 31
    assert OCT.name == "oktober 2025"


def test_trend_rule_boundaries() -> None:
    # systolic: noticeable amount 5 mmHg; up to it "same", up to 10 "slightly", beyond plain.
    assert trend("systolic", 145, 140) == "same"
    assert trend("systolic", 145.1, 140) == "slightly_higher"
    assert trend("systolic", 150, 140) == "slightly_higher"
    assert trend("systolic", 150.1, 140) == "higher"
    assert trend("systolic", 134, 140) == "slightly_lower"
    assert trend("systolic", 129, 140) == "lower"
    assert trend("weight", 80.9, 80.0) == "same"
    assert trend("weight", 82.1, 80.0) == "higher"
    assert trend("systolic", 145, None) is None


def test_summary_numbers_from_the_pure_function() -> None:
    s = summarise(
        patient_id=uuid.uuid4(),
        display_name="Tolvan Tolvansson",
        unit_name="Monitoreringsfunktionen Nord",
        month=OCT,
        current={
            ("blood_pressure", "systolic"): [140, 150] * 20,
            ("glucose_cgm", "glucose_interstitial"): [7.0] * 60 + [3.5] * 20 + [12.0] * 20,
            ("weight", "weight"): [80.0, 80.4, 79.5],
        },
        previous={("blood_pressure", "systolic"): [136] * 10, ("glucose_cgm", "glucose_interstitial"): [3.0, 5.0]},
        readings={"blood_pressure": 40, "glucose_cgm": 100, "weight": 3},
        schedule={"blood_pressure": 2, "weight": 1, "spo2": 1},
        planned_days=31,
    )
    by_kind = {k.kind: k for k in s.kinds}
    assert list(by_kind) == ["blood_pressure", "glucose_cgm", "weight", "spo2"]
    bp = by_kind["blood_pressure"]
    (sys_,) = bp.components
    assert (sys_.n, sys_.mean, sys_.min, sys_.max, sys_.previous_mean) == (40, 145, 140, 150, 136)
    assert sys_.trend_words == "något högre än förra månaden"
    assert (bp.readings, bp.planned) == (40, 62)
    cgm = by_kind["glucose_cgm"]
    assert cgm.components[0].mean == pytest.approx(7.3)
    assert (cgm.tir_pct, cgm.previous_tir_pct) == (60, 50)
    assert cgm.planned is None
    assert by_kind["weight"].weight_change_kg == pytest.approx(-0.5)
    assert by_kind["spo2"].readings == 0  # planned but not measured: still in the letter
    assert by_kind["spo2"].planned == 31
    words = " ".join(paragraph(bp, OCT))
    assert "Du mätte ditt blodtryck 40 gånger i oktober." in words
    assert "Enligt planen skulle du mäta 62 gånger (2 mätningar per dag)." in words
    assert "Övre trycket var i medel 145\u00a0mmHg, något högre än förra månaden." in words
    assert "60\u00a0% av tiden" in " ".join(paragraph(cgm, OCT))
    assert "minskade vikten med 0,5\u00a0kg" in " ".join(paragraph(by_kind["weight"], OCT))
    assert "Du mätte inte syret i blodet i oktober." in paragraph(by_kind["spo2"], OCT)


def test_render_without_the_font_is_a_clear_error(tmp_path: Path) -> None:
    s = summarise(
        patient_id=uuid.uuid4(),
        display_name="X",
        unit_name="Y",
        month=OCT,
        current={},
        previous={},
        readings={},
        schedule={},
        planned_days=31,
    )
    with pytest.raises(letter_pdf.FontMissingError, match="fonts-dejavu-core"):
        letter_pdf.render(s, printed_at=dt.datetime.now(dt.UTC), font_dir=tmp_path)


# --- the API ------------------------------------------------------------------------------


def test_letter_pdf_reads_back_in_swedish(client: TestClient, auth: Auth, seed: Seed, tmp_path: Path) -> None:
    pid = seed.patients[TOLVAN]
    r = client.get(f"/api/v1/patients/{pid}/letter.pdf", headers=auth(NURSE), params={"month": "2025-10"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert f"manadsbrev-{TOLVAN}-2025-10.pdf" in r.headers["content-disposition"]
    assert r.content.startswith(b"%PDF-")
    text = _text(r.content, tmp_path)
    assert "Hej Tolvan Tolvansson!" in text
    assert "Dina mätningar i oktober 2025" in text
    assert "Monitoreringsfunktionen Nord" in text
    assert "Kontakta din mottagning" in text
    assert "Du mätte ditt blodtryck 40 gånger i oktober." in text
    assert "Enligt planen skulle du mäta 62 gånger (2 mätningar per dag)." in text
    assert "Övre trycket var i medel 145 mmHg, något högre än förra månaden." in text
    assert "Nedre trycket var i medel 85 mmHg, ungefär som förra månaden." in text
    assert "Puls var i medel 72 slag/min, lägre än förra månaden." in text
    # The table: count, mean, lowest, highest; the rejected 290 mmHg is nowhere.
    assert "Övre trycket 40 145 mmHg 140 mmHg 150 mmHg" in text
    assert "290" not in text
    # Weight: 1 November 00:30 local time (99 kg) is not October's.
    assert "Vikt var i medel 80,9 kg, högre än förra månaden." in text
    assert "ökade vikten med 1,8 kg" in text
    assert "99,0" not in text
    assert "Med vänliga hälsningar" in text
    # No identity number, no alert internals.
    assert "19121212" not in text
    for internal in ("HF1", "H1", "rule", "larm"):
        assert internal not in text
    with psycopg.connect(seed.url) as conn:
        row = conn.execute(
            "SELECT action, detail->>'month' FROM audit_log WHERE resource = %s AND patient_id = %s",
            (f"patient/{pid}/letter", pid),
        ).fetchone()
    assert row == ("export", "2025-10")


def test_letter_cgm_time_in_range(client: TestClient, auth: Auth, seed: Seed, tmp_path: Path) -> None:
    pid = seed.patients[KARIN]
    r = client.get(f"/api/v1/patients/{pid}/letter.pdf", headers=auth(PHYSICIAN), params={"month": "2025-10"})
    assert r.status_code == 200, r.text
    text = _text(r.content, tmp_path)
    assert "Blodsocker var i medel 7,3 mmol/L, ungefär som förra månaden." in text
    assert "(3,9–10,0 mmol/L) 60 % av tiden" in text
    assert "Förra månaden var det 100 % av tiden." in text
    assert "Enligt planen" not in text  # no schedule for CGM


def test_letter_access_and_month_validation(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[TOLVAN]
    url = f"/api/v1/patients/{pid}/letter.pdf"
    assert client.get(url, headers=auth(NURSE_SYD), params={"month": "2025-10"}).status_code == 404
    assert client.get(url, headers=auth(AUDITOR), params={"month": "2025-10"}).status_code == 403
    assert client.get(url, params={"month": "2025-10"}).status_code == 401
    for bad, reason in (("2025-13", "01-12"), ("okt-2025", "YYYY-MM"), ("2999-01", "future")):
        r = client.get(url, headers=auth(NURSE), params={"month": bad})
        assert r.status_code == 422, bad
        assert reason in r.json()["detail"]
    # Default: the last complete month in Stockholm.
    r = client.get(url, headers=auth(NURSE))
    assert r.status_code == 200
    expected = Month.last_complete(dt.datetime.now(dt.UTC))
    assert f"-{expected}.pdf" in r.headers["content-disposition"]


def test_letter_without_font_is_503(
    client: TestClient, auth: Auth, seed: Seed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(letter_pdf, "FONT_DIR", tmp_path)
    r = client.get(f"/api/v1/patients/{seed.patients[TOLVAN]}/letter.pdf", headers=auth(NURSE))
    assert r.status_code == 503
    assert "fonts-dejavu-core" in r.json()["detail"]


def test_patient_page_links_the_letter(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[TOLVAN]
    page = client.get(f"/ui/patients/{pid}", headers=auth(NURSE))
    assert page.status_code == 200
    assert f'<a href="/api/v1/patients/{pid}/letter.pdf">Månadsbrev (PDF)</a>' in page.text


def test_fhir_summary_validates_with_the_letters_numbers(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[TOLVAN]
    r = client.get(f"/api/v1/patients/{pid}/fhir/summary", headers=auth(NURSE), params={"month": "2025-10"})
    assert r.status_code == 200, r.text
    report = DiagnosticReport.model_validate(r.json())
    assert report.status == "final"
    assert report.subject.reference == f"Patient/{pid}"
    assert report.effectivePeriod.start == OCT.start
    assert report.effectivePeriod.end == OCT.end
    obs = {o.id: o for o in report.contained}
    assert {ref.reference for ref in report.result} == {f"#{i}" for i in obs}
    systolic = obs["blood-pressure-systolic-average"]
    assert [c.code for c in systolic.code.coding] == ["8480-6", "systolic"]
    assert systolic.valueQuantity.value == 145
    assert systolic.valueQuantity.system == "http://unitsofmeasure.org"
    assert systolic.valueQuantity.code == "mm[Hg]"
    stats = {c.code.coding[0].code: c for c in systolic.component}
    assert stats["minimum"].valueQuantity.value == 140
    assert stats["maximum"].valueQuantity.value == 150
    assert stats["count"].valueInteger == 40
    assert stats["previous-month-average"].valueQuantity.value == 136
    assert stats["trend"].valueCodeableConcept.coding[0].code == "slightly_higher"
    measured = obs["blood-pressure-measurements"]
    assert measured.valueInteger == 40
    assert {c.code.coding[0].code: c.valueInteger for c in measured.component} == {"count": 40, "planned": 62}
    assert float(obs["weight-weight-average"].valueQuantity.value) == 80.9
    assert float(obs["weight-change"].valueQuantity.value) == 1.8
    assert "19121212" not in r.text
    karin = client.get(
        f"/api/v1/patients/{seed.patients[KARIN]}/fhir/summary", headers=auth(NURSE), params={"month": "2025-10"}
    )
    tir = {o.id: o for o in DiagnosticReport.model_validate(karin.json()).contained}["cgm-time-in-range"]
    assert tir.valueQuantity.value == 60
    assert tir.valueQuantity.code == "%"


def test_fhir_summary_access_and_month(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[TOLVAN]
    url = f"/api/v1/patients/{pid}/fhir/summary"

    def audited() -> int:
        with psycopg.connect(seed.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM audit_log WHERE resource = %s AND action = 'export'",
                (f"patient/{pid}/fhir/summary",),
            ).fetchone()
        assert row is not None
        return int(row[0])

    before = audited()
    assert client.get(url, headers=auth(NURSE_SYD), params={"month": "2025-10"}).status_code == 404
    bad = client.get(url, headers=auth(NURSE), params={"month": "2025-1"})
    assert bad.status_code == 422
    assert "YYYY-MM" in bad.json()["detail"]
    assert audited() == before  # refused and malformed requests export nothing
    current = Month.containing(dt.datetime.now(dt.UTC))
    partial = client.get(url, headers=auth(NURSE), params={"month": str(current)})
    assert partial.status_code == 200
    assert partial.json()["status"] == "partial"
    assert audited() == before + 1
