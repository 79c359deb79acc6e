"""The admin's and the auditor's pages, the role landing and menu, and the care plan's reason
for change: every form succeeds and shows a Swedish error, and each page checks its role.

Most tests share one seeded database (they create things under names of their own); the
browser tests at the end run a live server in Debian's Chromium."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clinic_api import labels
from tests.clinic_api.conftest import ADMIN, AUDITOR, NURSE, NURSE_SYD, PHYSICIAN, Seed, TestClient
from tests.clinic_api.test_browser import SHOTS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, Page, expect

Auth = Callable[[str], dict[str, str]]
# Skatteverket's test range (birth numbers 980-999) with valid check digits, as the demo seed uses.
PNR_NEW = "19800101-9838"
PNR_KIT = "19750513-9860"
PNR_BAD_CHECK = "19800101-9839"
CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}\b")
ADMIN_PAGES = [
    "/ui/admin",
    "/ui/admin/units",
    "/ui/admin/staff",
    "/ui/admin/patients",
    "/ui/admin/gateways",
]


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


@pytest.fixture
def seed(shared_seed: Seed) -> Seed:
    return shared_seed


def _db(seed: Seed) -> psycopg.Connection[Any]:
    return psycopg.connect(seed.url, autocommit=True)


def _one(seed: Seed, sql: str, params: Any = ()) -> Any:
    with _db(seed) as conn:
        row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _post(client: TestClient, auth: Auth, who: str, url: str, data: Any) -> Any:
    return client.post(url, headers=auth(who), data=data, follow_redirects=False)


# --- landing and menu --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "target"),
    [(NURSE, "/ui/alerts"), (PHYSICIAN, "/ui/alerts"), (ADMIN, "/ui/admin"), (AUDITOR, "/ui/audit")],
)
def test_landing_sends_each_role_to_a_page_it_may_open(client: TestClient, auth: Auth, who: str, target: str) -> None:
    r = client.get("/", headers=auth(who), follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == target
    assert client.get(target, headers=auth(who)).status_code == 200


def test_landing_without_login_goes_to_the_login(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2F"  # the sign-in, then back to the landing


def _menu(html: str) -> list[str]:
    nav = re.search(r'<nav aria-label="Huvudmeny">(.*?)</nav>', html, re.S)
    assert nav is not None
    return re.findall(r">([^<>]+)</a>", nav.group(1))


@pytest.mark.parametrize(
    ("who", "page", "menu", "role_sv"),
    [
        (NURSE, "/ui/alerts", ["Larmkö", "Patienter", "Gateways och mätutrustning", "Larmbelastning"], "Sjuksköterska"),
        (ADMIN, "/ui/admin", ["Gateways och mätutrustning", "Administration"], "Administratör"),
        (AUDITOR, "/ui/audit", ["Granskningslogg"], "Granskare"),
    ],
)
def test_menu_shows_only_what_the_roles_may_open(
    client: TestClient, auth: Auth, who: str, page: str, menu: list[str], role_sv: str
) -> None:
    r = client.get(page, headers=auth(who))
    assert r.status_code == 200
    assert _menu(r.text) == menu
    assert f"({role_sv})" in r.text
    # Every menu entry opens for this role.
    hrefs = re.findall(r'href="(/ui/[^"]+)"', re.search(r'<nav aria-label="Huvudmeny">(.*?)</nav>', r.text, re.S)[1])  # type: ignore[index]
    assert all(client.get(h, headers=auth(who)).status_code == 200 for h in hrefs)


# --- role checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", [NURSE, PHYSICIAN, AUDITOR])
@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_admin_pages_need_the_admin_role(client: TestClient, auth: Auth, who: str, page: str) -> None:
    r = client.get(page, headers=auth(who))
    assert r.status_code == 403
    assert "Ingen behörighet" in r.text
    assert "Administratör" in r.text


@pytest.mark.parametrize("who", [NURSE, PHYSICIAN, ADMIN])
def test_audit_pages_need_the_auditor_role(client: TestClient, auth: Auth, who: str) -> None:
    assert client.get("/ui/audit", headers=auth(who)).status_code == 403
    r = client.get("/ui/audit/export.csv", headers=auth(who))
    assert r.status_code == 403
    assert "text/csv" not in r.headers["content-type"]


def test_auditor_sees_no_clinical_pages(client: TestClient, auth: Auth, seed: Seed) -> None:
    for page in ("/ui/alerts", "/ui/patients", f"/ui/patients/{seed.patients['P-DEMO0001']}", "/ui/gateways"):
        assert client.get(page, headers=auth(AUDITOR)).status_code == 403, page


def test_nurse_cannot_post_admin_forms(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = _post(client, auth, NURSE, "/ui/admin/units", {"code": "MON-NURSE", "name": "Sjuksköterskans enhet"})
    assert r.status_code == 403
    assert _one(seed, "SELECT count(*) FROM care_unit WHERE code = 'MON-NURSE'") == 0
    r = _post(client, auth, NURSE, "/ui/admin/patients", {"personnummer": PNR_NEW, "display_name": "X", "unit_id": ""})
    assert r.status_code == 403


# --- care units ----------------------------------------------------------------------------


def test_create_unit(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = _post(client, auth, ADMIN, "/ui/admin/units", {"code": "MON-VAST", "name": "Monitorering Väst"})
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/admin/units?ok=unit"
    page = client.get(r.headers["location"], headers=auth(ADMIN)).text
    assert "Vårdenheten är skapad." in page
    assert "Monitorering Väst" in page
    uid = _one(seed, "SELECT id FROM care_unit WHERE code = 'MON-VAST'")
    assert _one(seed, "SELECT count(*) FROM audit_log WHERE action = 'create' AND resource = %s", (f"care_unit/{uid}",))
    # The API lists the same unit (one query function for both).
    assert "MON-VAST" in [u["code"] for u in client.get("/api/v1/units", headers=auth(ADMIN)).json()]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"code": "", "name": "Namnlös"}, "Fyll i kod."),
        ({"code": "MON VAST!", "name": "Fel kod"}, "Koden får bara innehålla bokstäver A–Z"),
        ({"code": "MON-NORD", "name": "Dubblett"}, "Det finns redan en vårdenhet med den koden."),
        ({"code": "MON-TOM", "name": "  "}, "Fyll i namn."),
    ],
)
def test_create_unit_errors_are_swedish(client: TestClient, auth: Auth, form: dict[str, str], message: str) -> None:
    r = _post(client, auth, ADMIN, "/ui/admin/units", form)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert message in r.text
    assert 'aria-invalid="true"' in r.text
    assert '"detail"' not in r.text


# --- staff ---------------------------------------------------------------------------------


def test_create_staff_and_change_roles_and_units(client: TestClient, auth: Auth, seed: Seed) -> None:
    nord, syd = str(seed.units["MON-NORD"]), str(seed.units["MON-SYD"])
    form = {"subject": "hsa-test-0001", "display_name": "Sjuksköterska Test Ny", "roles": ["nurse"], "unit_ids": [nord]}
    r = _post(client, auth, ADMIN, "/ui/admin/staff", form)
    assert r.status_code == 303, r.text
    page = client.get("/ui/admin/staff", headers=auth(ADMIN)).text
    row = re.search(r'<tr data-staff="hsa-test-0001">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "Sjuksköterska" in row[1]
    assert "MON-NORD" in row[1]
    assert "nurse" not in row[1]  # roles in Swedish
    sid = _one(seed, "SELECT id FROM staff WHERE subject = 'hsa-test-0001'")
    edit = client.get(f"/ui/admin/staff/{sid}", headers=auth(ADMIN))
    assert edit.status_code == 200
    assert 'value="nurse" checked' in edit.text

    r = _post(
        client,
        auth,
        ADMIN,
        f"/ui/admin/staff/{sid}",
        {"roles": ["nurse", "physician"], "unit_ids": [nord, syd], "active": "on"},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/admin/staff?ok=staff-updated"
    account = next(
        s for s in client.get("/api/v1/staff", headers=auth(ADMIN)).json() if s["subject"] == "hsa-test-0001"
    )
    assert sorted(account["roles"]) == ["nurse", "physician"]
    assert sorted(account["unit_codes"]) == ["MON-NORD", "MON-SYD"]
    assert account["active"] is True
    detail = _one(
        seed,
        "SELECT detail FROM audit_log WHERE action = 'update' AND resource = %s ORDER BY id DESC",
        (f"staff/{sid}",),
    )
    assert detail["previous"]["roles"] == ["nurse"]
    assert detail["roles"] == ["nurse", "physician"]

    # Deactivated (the checkbox left empty): the account can no longer get a token.
    r = _post(client, auth, ADMIN, f"/ui/admin/staff/{sid}", {"roles": ["nurse"], "unit_ids": [nord]})
    assert r.status_code == 303
    assert _one(seed, "SELECT active FROM staff WHERE id = %s", (sid,)) is False
    assert client.post("/dev-issuer/token", json={"subject": "hsa-test-0001"}).status_code == 404


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"subject": "hsa-x", "display_name": "Utan roll"}, "Välj roller."),
        ({"subject": "", "display_name": "Utan id", "roles": ["nurse"]}, "Fyll i inloggnings-id."),
        ({"subject": ADMIN, "display_name": "Dubblett", "roles": ["nurse"]}, "Det finns redan ett konto med det"),
        ({"subject": "hsa-y", "display_name": "Fel roll", "roles": ["janitor"]}, "Välj ett giltigt värde för roller."),
        ({"subject": "hsa-z", "display_name": "Fel enhet", "roles": ["nurse"], "unit_ids": ["nej"]}, "Välj en giltig"),
    ],
)
def test_create_staff_errors_are_swedish(client: TestClient, auth: Auth, form: dict[str, Any], message: str) -> None:
    r = _post(client, auth, ADMIN, "/ui/admin/staff", form)
    assert r.status_code == 422
    assert message in r.text
    assert "Formuläret kunde inte sparas" in r.text


def test_admin_cannot_remove_own_admin_role(client: TestClient, auth: Auth, seed: Seed) -> None:
    me = client.get("/api/v1/me", headers=auth(ADMIN)).json()
    units = [str(u) for u in me["unit_ids"]]
    r = _post(
        client, auth, ADMIN, f"/ui/admin/staff/{me['id']}", {"roles": ["nurse"], "unit_ids": units, "active": "on"}
    )
    assert r.status_code == 422
    assert "Du kan inte ta bort din egen administratörsroll" in r.text
    assert _one(seed, "SELECT roles FROM staff WHERE id = %s", (me["id"],)) == ["admin"]


def test_staff_update_api(client: TestClient, auth: Auth, seed: Seed) -> None:
    created = client.post(
        "/api/v1/staff",
        headers=auth(ADMIN),
        json={"subject": "hsa-api-0002", "display_name": "Läkare Api", "roles": ["physician"]},
    ).json()
    url = f"/api/v1/staff/{created['id']}"
    body = {"roles": ["physician"], "unit_ids": [str(seed.units["MON-SYD"])]}
    assert client.patch(url, headers=auth(NURSE), json=body).status_code == 403
    assert client.patch(url, headers=auth(AUDITOR), json=body).status_code == 403
    r = client.patch(url, headers=auth(ADMIN), json=body)
    assert r.status_code == 200
    assert r.json()["unit_codes"] == ["MON-SYD"]
    assert client.patch(url, headers=auth(ADMIN), json={"roles": []}).status_code == 422
    assert client.patch(f"/api/v1/staff/{uuid.uuid4()}", headers=auth(ADMIN), json=body).status_code == 404


# --- gateway kits --------------------------------------------------------------------------


def test_register_gateway(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = _post(client, auth, ADMIN, "/ui/admin/gateways", {"id": "gw-page-0100", "serial": "SN-PAGE-100"})
    assert r.status_code == 303
    page = client.get(r.headers["location"], headers=auth(ADMIN)).text
    assert "Gatewayen är registrerad." in page
    assert 'data-gateway="gw-page-0100"' in page
    assert _one(seed, "SELECT serial FROM gateway WHERE id = 'gw-page-0100'") == "SN-PAGE-100"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"id": "GW Stora Bokstäver"}, "Gateway-id skrivs med små bokstäver"),
        ({"id": ""}, "Fyll i gateway-id."),
        ({"id": "gw-demo-001"}, "Gateway-id eller serienummer finns redan registrerat."),
    ],
)
def test_register_gateway_errors_are_swedish(
    client: TestClient, auth: Auth, form: dict[str, str], message: str
) -> None:
    r = _post(client, auth, ADMIN, "/ui/admin/gateways", form)
    assert r.status_code == 422
    assert message in r.text


# --- enrolment, kit, code letter -----------------------------------------------------------


def _enrol(client: TestClient, auth: Auth, seed: Seed, pnr: str, name: str) -> str:
    form = {
        "personnummer": pnr,
        "display_name": name,
        "unit_id": str(seed.units["MON-NORD"]),
        "conditions": ["heart_failure", "hypertension"],
    }
    r = _post(client, auth, ADMIN, "/ui/admin/patients", form)
    assert r.status_code == 303, r.text
    m = re.fullmatch(r"/ui/admin/patients/([0-9a-f-]{36})\?ok=enrolled", r.headers["location"])
    assert m is not None
    return m[1]


def test_enrol_patient_never_shows_the_personnummer_again(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = _enrol(client, auth, seed, PNR_NEW, "Nyinskriven Testsson")
    page = client.get(f"/ui/admin/patients/{pid}?ok=enrolled", headers=auth(ADMIN))
    assert page.status_code == 200
    assert "Patienten är inskriven." in page.text
    pseudonym = _one(seed, "SELECT pseudonym FROM patient WHERE id = %s", (pid,))
    assert pseudonym in page.text
    roster = client.get("/ui/admin/patients", headers=auth(ADMIN)).text
    assert f'data-pseudonym="{pseudonym}"' in roster
    for html in (page.text, roster):
        assert PNR_NEW not in html
        assert PNR_NEW.replace("-", "") not in html
    assert _one(seed, "SELECT personnummer FROM patient_identity WHERE patient_id = %s", (pid,)) == PNR_NEW
    with _db(seed) as conn:
        plan = conn.execute(
            "SELECT version, conditions, notes, created_by FROM care_plan WHERE patient_id = %s", (pid,)
        ).fetchone()
    assert plan is not None
    assert plan[:3] == (1, ["heart_failure", "hypertension"], "Inskrivning")
    # The roster read names its patients in the audit log, like the clinicians' lists.
    assert _one(
        seed,
        "SELECT count(*) FROM audit_log WHERE resource = 'enrolment_list' AND detail->'patients' ? %s",
        (pid,),
    )
    # The nurse of the unit sees the new patient in the clinical list.
    assert pseudonym in client.get("/ui/patients", headers=auth(NURSE)).text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"personnummer": PNR_BAD_CHECK}, "Kontrollsiffran i personnumret stämmer inte."),
        ({"personnummer": "19801301-9838"}, "Personnumret innehåller ett datum som inte finns."),
        ({"personnummer": "800101-983"}, "Personnumret ska skrivas ÅÅÅÅMMDD-NNNN"),
        ({"personnummer": "19121212-1212"}, "En patient med det personnumret är redan inskriven."),
        ({"unit_id": ""}, "Välj vårdenhet."),
        ({"unit_id": "inte-en-enhet"}, "Välj en giltig vårdenhet."),
        ({"display_name": ""}, "Fyll i namn."),
        ({"conditions": ["flu"]}, "Välj ett giltigt värde för diagnoser."),
    ],
)
def test_enrol_errors_are_swedish_and_do_not_echo_the_personnummer(
    client: TestClient, auth: Auth, seed: Seed, form: dict[str, Any], message: str
) -> None:
    base = {"personnummer": PNR_KIT, "display_name": "Fel Felsson", "unit_id": str(seed.units["MON-NORD"])}
    body = {**base, **form}
    r = _post(client, auth, ADMIN, "/ui/admin/patients", body)
    assert r.status_code == 422
    assert message in r.text
    assert body["personnummer"] not in r.text
    assert _one(seed, "SELECT count(*) FROM patient WHERE display_name = 'Fel Felsson'") == 0


def test_enrol_only_into_own_units(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.post("/api/v1/units", headers=auth(ADMIN), json={"code": "MON-ANNAN", "name": "Annan enhet"})
    assert r.status_code == 201
    form = {"personnummer": PNR_KIT, "display_name": "Annan Enhetsson", "unit_id": r.json()["id"]}
    page = _post(client, auth, ADMIN, "/ui/admin/patients", form)
    assert page.status_code == 422
    assert "Du kan bara skriva in patienter i dina egna vårdenheter." in page.text
    # The unit is not even offered in the form.
    assert "MON-ANNAN" not in client.get("/ui/admin/patients", headers=auth(ADMIN)).text


def test_assign_kit_and_print_the_code_letter(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = _enrol(client, auth, seed, PNR_KIT, "Kit Kitsson")
    no_kit = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/enrollment-code", {})
    assert no_kit.status_code == 422
    assert "Tilldela patienten en gateway först." in no_kit.text
    assert _post(client, auth, ADMIN, "/ui/admin/gateways", {"id": "gw-page-0200"}).status_code == 303
    kit_page = client.get(f"/ui/admin/patients/{pid}", headers=auth(ADMIN)).text
    assert '<option value="gw-page-0200">' in kit_page
    assert '<option value="gw-demo-001">' not in kit_page  # in use: not offered

    empty = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway", {"gateway_id": ""})
    assert empty.status_code == 422
    assert "Välj en gateway." in empty.text
    taken = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway", {"gateway_id": "gw-demo-001"})
    assert taken.status_code == 422
    assert "Gatewayen är redan tilldelad en annan patient." in taken.text
    unknown = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway", {"gateway_id": "gw-finns-inte"})
    assert "Gatewayen finns inte." in unknown.text

    r = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway", {"gateway_id": "gw-page-0200"})
    assert r.status_code == 303
    assert "Gatewayen är tilldelad patienten." in client.get(r.headers["location"], headers=auth(ADMIN)).text

    letter = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/enrollment-code", {})
    assert letter.status_code == 200
    assert letter.headers["cache-control"] == "no-store"
    codes = CODE.findall(letter.text)
    assert len(set(codes)) == 1
    assert "gw-page-0200" in letter.text
    assert "Till dig som installerar" in letter.text
    assert PNR_KIT not in letter.text
    assert "Kit Kitsson" not in letter.text
    # The printed code is the real one: the gateway exchanges it for credentials once.
    ok = client.post("/api/v1/gateway-enrollment", json={"code": codes[0], "serial": "SN-PAGE-200"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["gateway_id"] == "gw-page-0200"
    assert client.post("/api/v1/gateway-enrollment", json={"code": codes[0]}).status_code == 410
    actions = [
        a
        for (a,) in _db(seed)
        .execute("SELECT action FROM audit_log WHERE patient_id = %s ORDER BY id", (pid,))
        .fetchall()
    ]
    assert actions.count("create") == 1
    assert "assign_gateway" in actions
    assert "issue_enrollment_code" in actions
    assert actions[-1] == "gateway_enrolled"


def test_end_assignment_frees_the_kit_for_another_patient(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0003"]  # MON-NORD, kit gw-demo-003
    other = _enrol(client, auth, seed, "19390310-9928", "Nästa Kitsson")
    page = client.get(f"/ui/admin/patients/{other}", headers=auth(ADMIN)).text
    assert '<option value="gw-demo-003">' not in page
    r = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway/end", {})
    assert r.status_code == 303
    assert "Tilldelningen är avslutad." in client.get(r.headers["location"], headers=auth(ADMIN)).text
    again = _post(client, auth, ADMIN, f"/ui/admin/patients/{pid}/gateway/end", {})
    assert again.status_code == 422
    assert "Patienten har ingen gateway tilldelad." in again.text
    assert '<option value="gw-demo-003">' in client.get(f"/ui/admin/patients/{other}", headers=auth(ADMIN)).text
    r = _post(client, auth, ADMIN, f"/ui/admin/patients/{other}/gateway", {"gateway_id": "gw-demo-003"})
    assert r.status_code == 303
    with _db(seed) as conn:
        rows = conn.execute(
            "SELECT patient_id, upper_inf(valid) FROM gateway_assignment WHERE gateway_id = 'gw-demo-003' ORDER BY id"
        ).fetchall()
    assert [(str(p), open_) for p, open_ in rows] == [(str(pid), False), (other, True)]
    # The API does the same (nothing left to end: 409).
    assert client.delete(f"/api/v1/patients/{pid}/gateway", headers=auth(ADMIN)).status_code == 409
    assert client.delete(f"/api/v1/patients/{other}/gateway", headers=auth(AUDITOR)).status_code == 403


def test_admin_cannot_open_another_units_patient(client: TestClient, auth: Auth, seed: Seed) -> None:
    with _db(seed) as conn:
        unit = conn.execute("INSERT INTO care_unit (code, name) VALUES ('MON-UTE', 'Ute') RETURNING id").fetchone()
        assert unit is not None
        row = conn.execute(
            "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES ('P-UTE00001', 'Ute', %s) RETURNING id",
            (unit[0],),
        ).fetchone()
    assert row is not None
    assert client.get(f"/ui/admin/patients/{row[0]}", headers=auth(ADMIN)).status_code == 404


# --- care plan: reason for change and version history ---------------------------------


def test_care_plan_change_needs_a_reason_and_shows_in_the_history(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0004"]  # MON-SYD: the physician's second unit
    before = _one(seed, "SELECT max(version) FROM care_plan WHERE patient_id = %s", (pid,))
    form = {"dry_weight_kg": "64,5", "personal_best_pef": "", "spo2_target": "hypercapnic", "reason": ""}
    r = _post(client, auth, PHYSICIAN, f"/ui/patients/{pid}/care-plan", form)
    assert r.status_code == 422
    assert "Skriv varför vårdplanen ändras." in r.text
    assert 'value="64,5"' in r.text  # the form keeps what was typed
    bad = _post(
        client, auth, PHYSICIAN, f"/ui/patients/{pid}/care-plan", {**form, "dry_weight_kg": "sextio", "reason": "x"}
    )
    assert bad.status_code == 422
    assert "Skriv torrvikt som ett tal" in bad.text
    low = _post(client, auth, PHYSICIAN, f"/ui/patients/{pid}/care-plan", {**form, "dry_weight_kg": "5", "reason": "x"})
    assert low.status_code == 422
    assert "Värdet för torrvikt ligger utanför det tillåtna intervallet." in low.text
    assert _one(seed, "SELECT max(version) FROM care_plan WHERE patient_id = %s", (pid,)) == before

    r = _post(
        client, auth, PHYSICIAN, f"/ui/patients/{pid}/care-plan", {**form, "reason": "Ny torrvikt efter återbesök"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/ui/patients/{pid}"
    history = client.get(f"/ui/patients/{pid}/care-plans", headers=auth(PHYSICIAN))
    assert history.status_code == 200
    row = re.search(rf'<tr data-version="{before + 1}">(.*?)</tr>', history.text, re.S)
    assert row is not None
    assert "Ny torrvikt efter återbesök" in row[1]
    assert "Läkare Erik Demo" in row[1]
    assert "64,5 kg" in row[1]
    assert 'data-version="1"' in history.text
    assert _one(
        seed,
        "SELECT count(*) FROM audit_log WHERE resource = %s AND action = 'read'",
        (f"patient/{pid}/care-plans",),
    )
    # The patient page links to the history and asks for the reason.
    patient = client.get(f"/ui/patients/{pid}", headers=auth(PHYSICIAN)).text
    assert f'href="/ui/patients/{pid}/care-plans"' in patient
    assert 'name="reason"' in patient


def test_care_plan_history_is_clinical_and_unit_scoped(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0004"]
    assert client.get(f"/ui/patients/{pid}/care-plans", headers=auth(NURSE)).status_code == 404
    assert client.get(f"/ui/patients/{pid}/care-plans", headers=auth(NURSE_SYD)).status_code == 200
    assert client.get(f"/ui/patients/{pid}/care-plans", headers=auth(ADMIN)).status_code == 403
    assert client.get(f"/ui/patients/{pid}/care-plans", headers=auth(AUDITOR)).status_code == 403


# --- audit log -----------------------------------------------------------------------------


def _audit_rows(html: str) -> list[str]:
    return re.findall(r'<tr data-audit-id="\d+">(.*?)</tr>', html, re.S)


def test_auditor_finds_the_nurses_read_in_local_time(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0003"]
    assert client.get(f"/ui/patients/{pid}", headers=auth(NURSE)).status_code == 200
    with _db(seed) as conn:
        at = conn.execute(
            "SELECT max(at) FROM audit_log WHERE resource = %s AND subject = %s", (f"patient/{pid}", NURSE)
        ).fetchone()
    assert at is not None
    r = client.get("/ui/audit", headers=auth(AUDITOR), params={"patient": "p-demo0003", "action": "read"})
    assert r.status_code == 200
    rows = _audit_rows(r.text)
    hit = [row for row in rows if f"patient/{pid}</code>" in row and "Sjuksköterska Anna Demo" in row]
    assert hit
    assert at[0].astimezone(labels.TZ).strftime("%Y-%m-%d %H:%M:%S") in hit[0]
    assert "Läsning" in hit[0]
    assert all("Läsning" in row for row in rows)  # the action filter holds
    # Column headings in Swedish.
    for heading in ("Tid", "Personal", "Händelse", "Resurs", "Patient"):
        assert f'<th scope="col">{heading}</th>' in r.text
    # The search is itself in the log, with its filter.
    detail = _one(
        seed, "SELECT detail FROM audit_log WHERE action = 'search' AND subject = %s ORDER BY id DESC", (AUDITOR,)
    )
    assert detail["patient_id"] == str(pid)
    assert detail["action"] == "read"


def test_audit_search_by_staff_and_time_range(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0001"]
    client.get(f"/ui/patients/{pid}", headers=auth(PHYSICIAN))
    erik = _one(seed, "SELECT id FROM staff WHERE subject = %s", (PHYSICIAN,))
    now = dt.datetime.now(labels.TZ)
    window = {
        "staff": str(erik),
        "from": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "to": now.strftime("%Y-%m-%dT%H:%M"),
    }
    rows = _audit_rows(client.get("/ui/audit", headers=auth(AUDITOR), params=window).text)
    assert rows
    assert all("Läkare Erik Demo" in row for row in rows)
    future = {
        **window,
        "from": (now + dt.timedelta(days=1)).strftime("%Y-%m-%d"),
        "to": (now + dt.timedelta(days=2)).strftime("%Y-%m-%d"),
    }
    r = client.get("/ui/audit", headers=auth(AUDITOR), params=future)
    assert r.status_code == 200
    assert _audit_rows(r.text) == []
    assert "inga händelser" in r.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"patient": "P-FINNSEJ1"}, "Ingen patient har den pseudonymen"),
        ({"from": "2026-12-03T10:00", "to": "2026-12-03T09:00"}, "Sluttiden måste vara efter starttiden."),
        ({"from": "igår"}, "Skriv tiden som ÅÅÅÅ-MM-DD TT:MM."),
        ({"staff": "inte-ett-id"}, "Välj en person i listan."),
        ({"action": "DROP TABLE"}, "Välj en händelse i listan."),
    ],
)
def test_audit_search_errors_are_swedish(client: TestClient, auth: Auth, params: dict[str, str], message: str) -> None:
    r = client.get("/ui/audit", headers=auth(AUDITOR), params=params)
    assert r.status_code == 422
    assert message in r.text
    assert _audit_rows(r.text) == []
    csv_r = client.get("/ui/audit/export.csv", headers=auth(AUDITOR), params=params)
    assert csv_r.status_code == 422
    assert message in csv_r.text


@pytest.fixture(scope="module")
def probe_rows(shared_seed: Seed) -> str:
    """60 rows of an action of their own, one second apart, for paging and export."""
    action = "paging_probe"
    base = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
    with _db(shared_seed) as conn:
        for i in range(60):
            conn.execute(
                "INSERT INTO audit_log (at, subject, action, resource, detail) VALUES (%s, 'probe', %s, %s, '{}')",
                (base + dt.timedelta(seconds=i), action, f"probe/{i}" if i != 59 else '=HYPERLINK("x")'),
            )
    return action


def test_audit_search_is_paged_newest_first(client: TestClient, auth: Auth, probe_rows: str) -> None:
    first = client.get("/ui/audit", headers=auth(AUDITOR), params={"action": probe_rows}).text
    rows = _audit_rows(first)
    assert len(rows) == 50
    assert "2026-06-01 12:00:59" in rows[0]  # 10:00:59 UTC is 12:00:59 in Stockholm summer time
    assert "probe/58" in rows[1]
    assert 'rel="next"' in first
    assert 'rel="prev"' not in first
    second = client.get("/ui/audit", headers=auth(AUDITOR), params={"action": probe_rows, "page": "2"}).text
    rows2 = _audit_rows(second)
    assert len(rows2) == 10
    assert "probe/0<" in rows2[-1]
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second


def test_audit_export_csv_for_excel(client: TestClient, auth: Auth, seed: Seed, probe_rows: str) -> None:
    r = client.get("/ui/audit/export.csv", headers=auth(AUDITOR), params={"action": probe_rows})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith('attachment; filename="granskningslogg-')
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["Tid (Europe/Stockholm)", "Personal", "Inloggnings-id", "Händelse"]
    assert len(rows) == 61
    assert rows[1][0] == "2026-06-01 12:00:59"
    assert rows[1][5] == '\'=HYPERLINK("x")'  # no formula for the spreadsheet to run
    assert rows[-1][5] == "probe/0"
    detail = _one(
        seed, "SELECT detail FROM audit_log WHERE action = 'export' AND subject = %s ORDER BY id DESC", (AUDITOR,)
    )
    assert detail["action"] == probe_rows
    assert detail["rows"] == 60
    assert detail["truncated"] is False


def test_audit_api_pages_with_offset(client: TestClient, auth: Auth, probe_rows: str) -> None:
    r = client.get("/api/v1/audit", headers=auth(AUDITOR), params={"action": probe_rows, "limit": 5, "offset": 55})
    assert r.status_code == 200
    assert [row["resource"] for row in r.json()] == [f"probe/{i}" for i in range(4, -1, -1)]


# --- in the browser (Playwright, Debian's Chromium) ---------------------------------------


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login(browser: Browser, base: str, name: str, landing: str) -> Page:
    """A browser context of its own per staff member (its own cookie)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE").new_page()
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/dev-issuer/authorize\?"))
    page.get_by_role("button", name=name).click()
    expect(page).to_have_url(re.compile(re.escape(landing) + "$"))
    return page


@pytest.mark.browser
def test_admin_enrols_a_patient_and_prints_the_code_letter(browser: Browser, server: str) -> None:
    page = _login(browser, server, "Administratör Maria Demo", "/ui/admin")
    menu = page.get_by_role("navigation", name="Huvudmeny")
    expect(menu.get_by_role("link", name="Administration")).to_be_visible()
    expect(menu.get_by_role("link", name="Larmkö")).to_have_count(0)
    _shot(page, "admin-01-overview")

    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Gateway-kit").click()
    page.get_by_label("Gateway-id").fill("GW KIT")
    page.get_by_role("button", name="Registrera").click()
    expect(page.get_by_role("alert")).to_contain_text("Gateway-id skrivs med små bokstäver")
    _shot(page, "admin-02-gateway-error")
    page.get_by_label("Gateway-id").fill("gw-kit-0042")
    page.get_by_label("Serienummer (valfritt)").fill("SN-0042")
    page.get_by_role("button", name="Registrera").click()
    expect(page.get_by_role("status")).to_have_text("Gatewayen är registrerad.")

    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Inskrivning av patienter").click()
    page.get_by_label("Personnummer").fill(PNR_BAD_CHECK)
    page.get_by_label("Namn").fill("Webb Testsson")
    page.get_by_label("Vårdenhet").select_option(label="MON-NORD – Monitoreringsfunktionen Nord")
    page.get_by_label("Hjärtsvikt").check()
    page.get_by_role("button", name="Skriv in patienten").click()
    expect(page.get_by_role("alert")).to_contain_text("Kontrollsiffran i personnumret stämmer inte.")
    expect(page.get_by_label("Personnummer")).to_have_value("")  # not echoed
    expect(page.get_by_label("Namn")).to_have_value("Webb Testsson")
    _shot(page, "admin-03-enrol-error")
    page.get_by_label("Personnummer").fill(PNR_NEW)
    page.get_by_role("button", name="Skriv in patienten").click()
    expect(page).to_have_url(re.compile(r"/ui/admin/patients/[0-9a-f-]{36}\?ok=enrolled$"))
    expect(page.get_by_role("status")).to_contain_text("Patienten är inskriven.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Webb Testsson")
    assert PNR_NEW not in page.content()

    page.get_by_label("Tilldela gateway").select_option("gw-kit-0042")
    page.get_by_role("button", name="Tilldela").click()
    expect(page.get_by_role("status")).to_have_text("Gatewayen är tilldelad patienten.")
    expect(page.get_by_test_id("kit")).to_have_text("gw-kit-0042")
    _shot(page, "admin-04-kit-assigned")

    page.get_by_role("button", name="Skapa engångskod och brev").click()
    code = page.get_by_test_id("code")
    expect(code).to_be_visible()
    expect(code).to_have_text(CODE)
    expect(page.get_by_role("heading", name="Engångskod för din mätutrustning")).to_be_visible()
    assert PNR_NEW not in page.content()
    assert "Webb Testsson" not in page.locator("article.letter").inner_text()
    _shot(page, "admin-05-code-letter")

    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Huvudmeny")).to_be_hidden()
    expect(page.locator(".no-print")).to_be_hidden()
    expect(code).to_be_visible()
    # Large type on paper: the code at 30 pt (40 px).
    assert page.evaluate("getComputedStyle(document.querySelector('.letter .code')).fontSize") == "40px"
    _shot(page, "admin-06-code-letter-print")
    page.pdf(path=str(SHOTS / "admin-06-code-letter.pdf"), format="A4", print_background=True)
    page.context.close()


@pytest.mark.browser
def test_auditor_finds_the_read_they_just_caused(browser: Browser, server: str, fresh_seed: Seed) -> None:
    pid = fresh_seed.patients["P-DEMO0001"]
    nurse = _login(browser, server, "Sjuksköterska Anna Demo", "/ui/alerts")
    nurse.get_by_role("link", name="Patienter").click()
    nurse.get_by_role("link", name="Tolvan Tolvansson").click()
    expect(nurse).to_have_url(re.compile(rf"/ui/patients/{pid}$"))
    nurse.context.close()

    page = _login(browser, server, "Granskare Olle Demo", "/ui/audit")
    menu = page.get_by_role("navigation", name="Huvudmeny")
    expect(menu.get_by_role("link")).to_have_text(["Granskningslogg"])
    page.get_by_label("Patient (pseudonym)").fill("P-DEMO0001")
    page.get_by_label("Händelse").select_option(label="Läsning")
    page.get_by_role("button", name="Sök").click()
    rows = page.locator("tr[data-audit-id]")
    hit = rows.filter(has_text=f"patient/{pid}").filter(has_text="Sjuksköterska Anna Demo")
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text("Läsning")
    expect(page.get_by_role("columnheader", name="Tid")).to_be_visible()
    _shot(page, "audit-01-search")

    with page.expect_download() as dl:
        page.get_by_role("link", name="Exportera som CSV").click()
    data = Path(dl.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert f"patient/{pid}" in text
    assert "Sjuksköterska Anna Demo" in text

    page.get_by_label("Patient (pseudonym)").fill("P-FINNSEJ1")
    page.get_by_role("button", name="Sök").click()
    expect(page.get_by_role("alert")).to_contain_text("Ingen patient har den pseudonymen")
    _shot(page, "audit-02-search-error")
    page.context.close()
