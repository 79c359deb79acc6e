"""Web security: refused cross-unit requests are audited, cookie-authenticated changes must
come from our own origin, security headers on every answer, and errors as Swedish pages
on /ui while the API stays JSON."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI

from clinic_api.app import create_app
from clinic_api.auth import DevIssuerKeys
from clinic_api.security import origin_of
from tests.clinic_api.conftest import ADMIN, AUDITOR, NURSE, Seed, TestClient, app_client, make_settings
from tests.clinic_api.test_sign_in import _sign_in

Auth = Callable[[str], dict[str, str]]
SYD_PATIENT = "P-DEMO0004"  # MON-SYD; the MON-NORD nurse must not reach it
NORD_PATIENT = "P-DEMO0001"
EVIL = "https://evil.example"


def _audit_rows(seed: Seed, action: str) -> list[dict[str, Any]]:
    with psycopg.connect(seed.url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            """SELECT l.staff_id, l.subject, l.action, l.resource, l.patient_id, l.detail
               FROM audit_log l WHERE l.action = %s ORDER BY l.id""",
            (action,),
        )
        return cur.fetchall()


def _staff_id(seed: Seed, subject: str) -> uuid.UUID:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT id FROM staff WHERE subject = %s", (subject,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _alert_status(seed: Seed, alert_id: int) -> str:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT status FROM alert WHERE id = %s", (alert_id,)).fetchone()
    assert row is not None
    return str(row[0])


def _login(client: TestClient, subject: str) -> None:
    """The page sign-in (authorization code + PKCE at the dev issuer): the cookie stays on the client."""
    r = _sign_in(client, subject)
    assert r.status_code == 303, r.text
    assert "egenmon_session" in client.cookies


# --- 1. refused attempts are audited -------------------------------------------------------


def test_other_units_patient_is_404_and_audited(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[SYD_PATIENT]
    r = client.get(f"/api/v1/patients/{pid}", headers=auth(NURSE))
    assert r.status_code == 404
    assert r.json() == {"detail": "patient not found"}  # nothing about the patient revealed
    rows = _audit_rows(seed, "read_refused")
    assert len(rows) == 1
    row = rows[0]
    assert row["staff_id"] == _staff_id(seed, NURSE)
    assert row["subject"] == NURSE
    assert row["resource"] == f"/api/v1/patients/{pid}"
    assert row["patient_id"] == pid  # so a search by patient shows who tried
    assert row["detail"] == {"method": "GET", "status": 404, "outcome": "refused"}
    # Nothing of a granted read was written.
    assert [r for r in _audit_rows(seed, "read") if r["patient_id"] == pid] == []


def test_refusals_on_pages_alerts_gateways_and_writes(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[SYD_PATIENT]
    aid = seed.alert_id(SYD_PATIENT)
    assert client.get(f"/api/v1/alerts/{aid}", headers=auth(NURSE)).status_code == 404
    assert client.get("/api/v1/gateways/gw-demo-004", headers=auth(NURSE)).status_code == 404
    assert client.get(f"/ui/patients/{pid}", headers=auth(NURSE)).status_code == 404
    assert client.get("/api/v1/alerts", params={"patient_id": str(pid)}, headers=auth(NURSE)).status_code == 404
    r = client.post(f"/api/v1/alerts/{aid}/resolve", json={"reason": "no_action_needed"}, headers=auth(NURSE))
    assert r.status_code == 404
    assert _alert_status(seed, aid) == "open"
    reads = _audit_rows(seed, "read_refused")
    assert [r["resource"] for r in reads] == [
        f"/api/v1/alerts/{aid}",
        "/api/v1/gateways/gw-demo-004",
        f"/ui/patients/{pid}",
        "/api/v1/alerts",
    ]
    assert {r["patient_id"] for r in reads} == {pid}  # resolved from the alert and the gateway too
    writes = _audit_rows(seed, "write_refused")
    assert [(w["resource"], w["patient_id"], w["detail"]["method"]) for w in writes] == [
        (f"/api/v1/alerts/{aid}/resolve", pid, "POST")
    ]


def test_refusal_of_an_unknown_patient_and_of_a_missing_role(client: TestClient, auth: Auth, seed: Seed) -> None:
    ghost = uuid.uuid4()
    assert client.get(f"/api/v1/patients/{ghost}", headers=auth(NURSE)).status_code == 404
    assert client.get("/api/v1/units", headers=auth(NURSE)).status_code == 403
    rows = _audit_rows(seed, "read_refused")
    assert [(r["resource"], r["patient_id"], r["detail"]["status"]) for r in rows] == [
        (f"/api/v1/patients/{ghost}", None, 404),
        ("/api/v1/units", None, 403),
    ]
    # Anonymous requests and unknown routes name no staff member: nothing to audit.
    assert client.get(f"/api/v1/patients/{ghost}").status_code == 401
    assert client.get("/api/v1/nothing-here", headers=auth(NURSE)).status_code == 404
    assert len(_audit_rows(seed, "read_refused")) == 2


def test_auditor_finds_refusals_by_patient(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients[SYD_PATIENT]
    client.get(f"/api/v1/patients/{pid}/summary", headers=auth(NURSE))
    found = client.get("/api/v1/audit", params={"patient_id": str(pid)}, headers=auth(AUDITOR)).json()
    assert [(f["action"], f["subject"]) for f in found] == [("read_refused", NURSE)]


# --- 2. Origin check on cookie-authenticated changes ---------------------------------------


def test_cross_origin_cookie_post_is_refused_and_changes_nothing(client: TestClient, seed: Seed) -> None:
    aid = seed.alert_id(NORD_PATIENT)
    _login(client, NURSE)
    for headers in ({"Origin": EVIL}, {"Referer": f"{EVIL}/attack.html"}, {}, {"Origin": "null"}):
        r = client.post(f"/ui/alerts/{aid}/resolve", data={}, headers=headers, follow_redirects=False)
        assert r.status_code == 403, headers
        assert r.headers["content-type"].startswith("text/html")
        assert "Ingen behörighet" in r.text
        assert "annan webbplats" in r.text
        assert _alert_status(seed, aid) == "open"
    # The API through the cookie: the same rule, answered as JSON.
    r = client.post(f"/api/v1/alerts/{aid}/acknowledge", json={}, headers={"Origin": EVIL})
    assert r.status_code == 403
    assert r.json() == {"detail": "cross-origin request refused"}
    assert _alert_status(seed, aid) == "open"
    # An attacker's page cannot log the user out either.
    assert client.post("/ui/logout", headers={"Origin": EVIL}, follow_redirects=False).status_code == 403


def test_same_origin_cookie_posts_work(client: TestClient, seed: Seed) -> None:
    aid = seed.alert_id(NORD_PATIENT)
    _login(client, NURSE)
    # Host and scheme of the request (TestClient: http://testserver), default port or not.
    r = client.post(
        f"/ui/alerts/{aid}/acknowledge", data={}, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert _alert_status(seed, aid) == "acknowledged"
    r = client.post(
        f"/ui/alerts/{aid}/comment",
        data={"comment": "Ringt"},
        headers={"Referer": "http://TESTSERVER:80/ui/alerts?status=open"},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_bearer_post_without_origin_is_not_checked(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id(NORD_PATIENT)
    r = client.post(f"/api/v1/alerts/{aid}/acknowledge", json={}, headers=auth(NURSE))
    assert r.status_code == 200
    assert _alert_status(seed, aid) == "acknowledged"
    # Even with the cookie present: with a bearer header the cookie is never used.
    _login(client, NURSE)
    r = client.post(f"/api/v1/alerts/{aid}/comment", json={"comment": "Ok"}, headers={**auth(NURSE), "Origin": EVIL})
    assert r.status_code == 200


def test_configured_origin_behind_a_proxy(seed: Seed, dev_keys: DevIssuerKeys) -> None:
    settings = make_settings(seed.url, allowed_origins="https://egenmon.region.example, https://alt.example:8443")
    assert settings.allowed_origins == ["https://egenmon.region.example", "https://alt.example:8443"]
    aid = seed.alert_id(NORD_PATIENT)
    with app_client(settings, dev_keys) as c:
        _login(c, NURSE)
        r = c.post(f"/ui/alerts/{aid}/comment", data={"comment": "a"}, headers={"Origin": "https://alt.example:8443"})
        assert r.status_code == 200  # followed the redirect to the queue
        r = c.post(f"/ui/alerts/{aid}/comment", data={"comment": "b"}, headers={"Origin": "https://alt.example"})
        assert r.status_code == 403  # another port is another origin


def test_allowed_origins_must_be_origins(seed: Seed) -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        make_settings(seed.url, allowed_origins=["https://egenmon.example/ui"])


def test_origin_of() -> None:
    assert origin_of("HTTPS://Egenmon.Example:443/ui/alerts?x=1") == "https://egenmon.example"
    assert origin_of("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert origin_of("http://[::1]:8000") == "http://[::1]:8000"
    assert origin_of("null") is None
    assert origin_of("javascript:alert(1)") is None
    assert origin_of("http://host:99999") is None


# --- 3. security headers -------------------------------------------------------------------

BASE_CSP = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "style-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
}


def _csp(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";"):
        name, _, rest = part.strip().partition(" ")
        out[name] = rest
    return out


def _assert_headers(r: Any, *, hsts: bool = False) -> None:
    assert _csp(r.headers["content-security-policy"]) == BASE_CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert ("strict-transport-security" in r.headers) is hsts


def test_headers_on_pages_api_errors_and_static(client: TestClient, auth: Auth, seed: Seed) -> None:
    _assert_headers(client.get("/ui/alerts", headers=auth(NURSE)))
    _assert_headers(client.get("/api/v1/patients", headers=auth(NURSE)))
    _assert_headers(client.get(f"/api/v1/patients/{seed.patients[SYD_PATIENT]}", headers=auth(NURSE)))
    _assert_headers(client.get("/api/v1/patients"))  # 401
    _assert_headers(client.get("/static/app.css"))
    _assert_headers(client.get("/healthz"))
    _assert_headers(client.get("/", follow_redirects=False))


def test_hsts_over_https_and_issuer_in_form_action(seed: Seed, dev_keys: DevIssuerKeys) -> None:
    with TestClient(create_app(make_settings(seed.url), dev_keys=dev_keys), base_url="https://testserver") as c:
        r = c.get("/healthz")
        assert r.headers["strict-transport-security"] == "max-age=31536000"
    settings = make_settings(
        seed.url,
        demo=False,
        public_base_url="https://egenmon.region.example",
        oidc_issuer="https://idp.region.example/realms/vard",
        oidc_client_id="egenmon-clinic",
        session_secret="another-real-long-secret-value-456",
        enrollment_pepper="a-real-long-secret-value-123",
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/healthz")
        assert r.headers["strict-transport-security"] == "max-age=31536000"  # public address is https
        assert _csp(r.headers["content-security-policy"])["form-action"] == "'self' https://idp.region.example"


def test_docs_page_allows_its_inline_script_by_hash(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    csp = _csp(r.headers["content-security-policy"])
    assert "'unsafe-inline'" not in csp["script-src"]
    assert re.search(r"'sha256-[A-Za-z0-9+/=]{44}'", csp["script-src"])
    assert csp["frame-ancestors"] == "'none'"
    assert r.headers["x-frame-options"] == "DENY"


# --- 4. errors as Swedish pages ------------------------------------------------------------


def _assert_page(r: Any, status: int, heading: str) -> None:
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert f"<h1>{heading}</h1>" in r.text
    assert '<html lang="sv">' in r.text
    assert 'href="/ui/alerts"' in r.text
    assert '"detail"' not in r.text


def test_other_units_patient_page_is_a_404_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.get(f"/ui/patients/{seed.patients[SYD_PATIENT]}", headers=auth(NURSE))
    _assert_page(r, 404, "Sidan finns inte")
    assert "Greta" not in r.text
    assert "Sjuksköterska Anna Demo" in r.text  # signed in: the menu is there
    _assert_page(client.get("/ui/no-such-page", headers=auth(NURSE)), 404, "Sidan finns inte")


def test_forbidden_action_is_a_403_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.post(f"/ui/alerts/{seed.alert_id(NORD_PATIENT)}/acknowledge", headers=auth(ADMIN), data={})
    _assert_page(r, 403, "Ingen behörighet")


def test_bad_ids_are_a_422_page_naming_the_parameter(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.get("/ui/patients/19121212-1212", headers=auth(NURSE))
    _assert_page(r, 422, "Felaktig adress")
    assert "patient-id (i adressen)" in r.text
    assert "19121212-1212" not in r.text  # the input is never echoed
    r = client.get(f"/ui/patients/{seed.patients[NORD_PATIENT]}", params={"days": "9999x"}, headers=auth(NURSE))
    _assert_page(r, 422, "Felaktig adress")
    assert "antal dagar (i adressens filter)" in r.text
    assert "9999x" not in r.text
    r = client.get("/ui/alerts", params={"status": "<script>x</script>"}, headers=auth(NURSE))
    _assert_page(r, 422, "Felaktig adress")
    assert "<script>" not in r.text


def test_bad_form_values_are_a_422_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.post(
        f"/ui/alerts/{seed.alert_id(NORD_PATIENT)}/snooze", headers=auth(NURSE), data={"snooze_hours": "10000"}
    )
    _assert_page(r, 422, "Felaktiga uppgifter")
    assert "antal timmar (i formuläret)" in r.text
    assert "10000" not in r.text


def test_conflict_is_a_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    aid = seed.alert_id(NORD_PATIENT)
    url = f"/ui/alerts/{aid}/resolve"
    form = {"reason": "no_action_needed"}
    assert client.post(url, headers=auth(NURSE), data=form, follow_redirects=False).status_code == 303
    # A page action that cannot be done goes back to the alert's page with the reason in Swedish.
    again = client.post(url, headers=auth(NURSE), data=form)
    assert again.status_code == 200
    assert "Larmet är redan avslutat." in again.text
    assert again.url.path == f"/ui/alerts/{aid}"


def test_api_errors_stay_json(client: TestClient, auth: Auth, seed: Seed) -> None:
    r = client.get(f"/api/v1/patients/{seed.patients[SYD_PATIENT]}", headers=auth(NURSE))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    r = client.get("/api/v1/patients/19121212-1212", headers=auth(NURSE))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["path", "patient_id"]
    assert "19121212-1212" not in r.text
    assert client.get("/api/v1/units", headers=auth(NURSE)).json() == {"detail": "needs the admin role"}
    assert client.get("/api/v1/nothing").json() == {"detail": "Not Found"}


@pytest.fixture
def boom_client(seed: Seed, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    app: FastAPI = create_app(make_settings(seed.url), dev_keys=dev_keys)

    def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    app.add_api_route("/ui/boom", boom)
    app.add_api_route("/api/v1/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_server_error_shows_no_details(boom_client: TestClient) -> None:
    r = boom_client.get("/ui/boom")
    _assert_page(r, 500, "Något gick fel")
    assert "secret-internal-detail" not in r.text
    assert "Traceback" not in r.text
    _assert_headers(r)
    r = boom_client.get("/api/v1/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}
    _assert_headers(r)
