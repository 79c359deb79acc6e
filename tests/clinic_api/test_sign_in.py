"""The pages' OIDC sign-in (authorization code + PKCE) against the development issuer.

The app's discovery and code-exchange requests go through the test client itself, so every
step is the real route of the real app: /ui/login → /dev-issuer/authorize → callback →
/dev-issuer/token → session cookie.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest

from clinic_api import oidc, sessions
from clinic_api.app import create_app
from clinic_api.auth import DevIssuerKeys
from clinic_api.errors import AuthError
from clinic_api.routers.login import safe_next
from tests.clinic_api.conftest import NURSE, Seed, TestClient, make_settings

CLIENT_ID = "egenmon-clinic"
REDIRECT_URI = "http://testserver/ui/auth/callback"


class CountingHttp:
    """The test client as the app's IdP connection, counting what the app asks for."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.requests: list[str] = []

    def get(self, url: str, **kw: Any) -> httpx.Response:
        self.requests.append("GET " + urlsplit(url).path)
        return self.client.get(url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        self.requests.append("POST " + urlsplit(url).path)
        return self.client.post(url, **kw)


def _client(seed: Seed, dev_keys: DevIssuerKeys, **settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(seed.url, **settings), dev_keys=dev_keys)) as c:
        c.app.state.oidc.http = CountingHttp(c)  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def client(seed: Seed, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    yield from _client(seed, dev_keys)


def _authorize(client: TestClient, next_: str | None = None) -> dict[str, str]:
    """/ui/login → the IdP's authorization request, as query parameters."""
    r = client.get("/ui/login", params={"next": next_} if next_ else None, follow_redirects=False)
    assert r.status_code == 303, r.text
    loc = urlsplit(r.headers["location"])
    assert loc.path == "/dev-issuer/authorize"
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def _pick(client: TestClient, params: dict[str, str], subject: str = NURSE) -> dict[str, str]:
    """Choose a demo user on the issuer's page; returns the callback's query (code, state)."""
    form = {k: v for k, v in params.items() if k != "response_type"}  # the page's hidden fields
    # A browser sends its Origin with a form post (the Origin check, clinic_api/security.py).
    r = client.post(
        "/dev-issuer/authorize",
        data={**form, "subject": subject},
        headers={"origin": "http://testserver"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    loc = urlsplit(r.headers["location"])
    assert f"http://testserver{loc.path}" == REDIRECT_URI
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def _sign_in(client: TestClient, subject: str = NURSE, next_: str | None = None) -> httpx.Response:
    back = _pick(client, _authorize(client, next_), subject)
    return client.get("/ui/auth/callback", params=back, follow_redirects=False)


def _cookie_header(r: httpx.Response, name: str) -> str:
    found = [h for h in r.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(found) == 1, r.headers.get_list("set-cookie")
    return found[0]


def test_authorization_request_carries_pkce_state_nonce(client: TestClient) -> None:
    r = client.get("/ui/login", follow_redirects=False)
    q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == REDIRECT_URI
    assert q["scope"] == "openid profile"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32
    assert len(q["nonce"]) >= 32
    assert q["state"] != q["nonce"]
    cookie = _cookie_header(r, "egenmon_sign_in").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/ui/auth" in cookie
    assert "max-age=600" in cookie
    # The verifier stays with the browser's signed cookie; only its hash went to the IdP.
    pending = client.app.state.cookie_signer.verify(  # type: ignore[attr-defined]
        sessions.SIGN_IN, client.cookies["egenmon_sign_in"]
    )
    assert oidc.s256(pending["cv"]) == q["code_challenge"]
    assert pending["st"] == q["state"]
    assert pending["nn"] == q["nonce"]


def test_nurse_signs_in_and_lands_on_the_queue(client: TestClient, seed: Seed) -> None:
    r = _sign_in(client)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"  # the role landing (a nurse goes on to the queue)
    session = _cookie_header(r, "egenmon_session").lower()
    assert "httponly" in session
    assert "samesite=lax" in session
    assert "path=/" in session
    assert "max-age=28800" in session
    assert "secure" not in session  # plain-http demo only
    # The single-use sign-in state is cleared.
    assert 'egenmon_sign_in=""' in _cookie_header(r, "egenmon_sign_in")
    page = client.get("/ui/alerts")
    assert page.status_code == 200
    assert "Sjuksköterska Anna Demo" in page.text
    # Discovery once (then cached), one code exchange.
    http: CountingHttp = client.app.state.oidc.http  # type: ignore[attr-defined]
    assert http.requests == ["GET /dev-issuer/.well-known/openid-configuration", "POST /dev-issuer/token"]
    _sign_in(client)
    assert http.requests.count("GET /dev-issuer/.well-known/openid-configuration") == 1
    with psycopg.connect(seed.url) as conn:
        rows = conn.execute("SELECT action, resource FROM audit_log WHERE subject = %s AND action = 'login'", (NURSE,))
        assert rows.fetchall() == [("login", "session"), ("login", "session")]


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client: TestClient) -> None:
    assert _sign_in(client, next_="/ui/patients").headers["location"] == "/ui/patients"
    assert _sign_in(client, next_="//evil.example/ui/").headers["location"] == "/"
    assert safe_next("https://evil.example/ui/") is None
    assert safe_next("/ui/\\evil") is None
    assert safe_next("/ui/alerts?status=open") == "/ui/alerts?status=open"


def test_tampered_state_parameter_is_refused(client: TestClient) -> None:
    back = _pick(client, _authorize(client))
    r = client.get("/ui/auth/callback", params={**back, "state": back["state"] + "x"}, follow_redirects=False)
    assert r.status_code == 400
    assert "hör inte till det här inloggningsförsöket" in r.text
    assert 'lang="sv"' in r.text
    assert "egenmon_session" not in r.headers.get("set-cookie", "")
    # The state was single use: the untampered answer is refused now too.
    r = client.get("/ui/auth/callback", params=back, follow_redirects=False)
    assert r.status_code == 400
    assert "saknas eller har gått ut" in r.text


def test_tampered_state_cookie_is_refused(client: TestClient) -> None:
    back = _pick(client, _authorize(client))
    head, body, sig = client.cookies["egenmon_sign_in"].split(".")
    claims = json.loads(jwt.utils.base64url_decode(body))
    claims["st"] = "attacker-chosen"
    forged_body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    client.cookies.set("egenmon_sign_in", f"{head}.{forged_body}.{sig}", path="/ui/auth")
    r = client.get("/ui/auth/callback", params={**back, "state": "attacker-chosen"}, follow_redirects=False)
    assert r.status_code == 400
    assert "ogiltigt eller har gått ut" in r.text


def test_callback_without_a_sign_in_is_refused(client: TestClient) -> None:
    r = client.get("/ui/auth/callback", params={"code": "x", "state": "y"}, follow_redirects=False)
    assert r.status_code == 400
    assert "Inloggningen misslyckades" in r.text
    assert 'action="/ui/login"' in r.text


def test_idp_error_is_shown_not_followed(client: TestClient) -> None:
    params = _authorize(client)
    r = client.get("/ui/auth/callback", params={"error": "access_denied", "state": params["state"]})
    assert r.status_code == 400
    assert "avbröt inloggningen (access_denied)" in r.text


def test_wrong_nonce_in_the_id_token_is_refused(client: TestClient) -> None:
    back = _pick(client, _authorize(client))
    # The IdP (here: its code store) answers with an ID token for another sign-in's nonce.
    codes = client.app.state.dev_codes  # type: ignore[attr-defined]
    codes._codes[back["code"]] = dataclasses.replace(codes._codes[back["code"]], nonce="another-sign-in")
    r = client.get("/ui/auth/callback", params=back, follow_redirects=False)
    assert r.status_code == 400
    assert "kunde inte verifieras" in r.text
    assert client.get("/ui/alerts", follow_redirects=False).status_code == 303


def test_id_token_claim_checks() -> None:
    ok = {"nonce": "n-1", "aud": CLIENT_ID, "iat": 1}
    oidc.check_id_token_claims(ok, nonce="n-1", client_id=CLIENT_ID)
    with pytest.raises(AuthError, match="nonce"):
        oidc.check_id_token_claims({**ok, "nonce": "n-2"}, nonce="n-1", client_id=CLIENT_ID)
    with pytest.raises(AuthError, match="nonce"):
        oidc.check_id_token_claims({"aud": CLIENT_ID, "iat": 1}, nonce="n-1", client_id=CLIENT_ID)
    with pytest.raises(AuthError, match="azp"):
        oidc.check_id_token_claims({**ok, "aud": [CLIENT_ID, "other"]}, nonce="n-1", client_id=CLIENT_ID)
    oidc.check_id_token_claims({**ok, "aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}, nonce="n-1", client_id=CLIENT_ID)


def test_pkce_s256() -> None:
    # RFC 7636 Appendix B.
    assert oidc.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier, challenge = oidc.new_pkce()
    assert len(verifier) == 64
    assert oidc.pkce_matches(verifier, challenge)
    assert not oidc.pkce_matches(verifier[:-1] + ("A" if verifier[-1] != "A" else "B"), challenge)
    assert not oidc.pkce_matches("short", oidc.s256("short"))  # under 43 characters
    assert oidc.new_pkce()[0] != verifier


def test_dev_issuer_token_endpoint_checks_pkce_and_single_use(client: TestClient) -> None:
    params = _authorize(client)
    back = _pick(client, params)
    pending = client.app.state.cookie_signer.verify(  # type: ignore[attr-defined]
        sessions.SIGN_IN, client.cookies["egenmon_sign_in"]
    )
    grant = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
    }
    wrong = client.post("/dev-issuer/token", data={**grant, "code_verifier": "A" * 64})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The failed attempt used the code up (RFC 6749 §4.1.2: single use).
    again = client.post("/dev-issuer/token", data={**grant, "code_verifier": pending["cv"]})
    assert again.json()["error"] == "invalid_grant"

    back = _pick(client, params)
    r = client.post("/dev-issuer/token", data={**grant, "code": back["code"], "code_verifier": pending["cv"]})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    jwks = client.get("/dev-issuer/jwks").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(
        body["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer="http://testserver/dev-issuer"
    )
    assert claims["sub"] == NURSE
    assert claims["nonce"] == params["nonce"]
    assert claims["name"] == "Sjuksköterska Anna Demo"


def test_dev_issuer_refuses_unregistered_client_and_redirect(client: TestClient) -> None:
    params = _authorize(client)
    for bad in ({"redirect_uri": "https://evil.example/cb"}, {"client_id": "someone-else"}):
        r = client.get("/dev-issuer/authorize", params={**params, **bad}, follow_redirects=False)
        assert r.status_code == 400  # an error page, never a redirect to the unregistered URI
    r = client.get("/dev-issuer/authorize", params={**params, "code_challenge_method": "plain"}, follow_redirects=False)
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_request"]


def test_expired_session_redirects_to_sign_in(client: TestClient) -> None:
    signer: sessions.CookieSigner = client.app.state.cookie_signer  # type: ignore[attr-defined]
    client.cookies.set("egenmon_session", signer.sign(sessions.SESSION, {"sub": NURSE}, -60))
    r = client.get("/ui/patients?x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fpatients%3Fx%3D1"
    api = client.get("/api/v1/patients")
    assert api.status_code == 401
    assert api.json()["detail"] == "session expired"
    # The same session, still valid, opens the page: only the expiry made the difference.
    client.cookies.set("egenmon_session", signer.sign(sessions.SESSION, {"sub": NURSE}, 60))
    assert client.get("/ui/patients", follow_redirects=False).status_code == 200


def test_session_signed_by_another_key_or_for_sign_in_is_refused(client: TestClient) -> None:
    other = sessions.CookieSigner(b"another installation's secret")
    client.cookies.set("egenmon_session", other.sign(sessions.SESSION, {"sub": NURSE}, 600))
    assert client.get("/ui/alerts", follow_redirects=False).status_code == 303
    signer: sessions.CookieSigner = client.app.state.cookie_signer  # type: ignore[attr-defined]
    client.cookies.set("egenmon_session", signer.sign(sessions.SIGN_IN, {"sub": NURSE}, 600))
    assert client.get("/ui/alerts", follow_redirects=False).status_code == 303


def test_logout_clears_the_session_and_ends_the_idp_session(client: TestClient) -> None:
    _sign_in(client)
    r = client.post("/ui/logout", headers={"origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303
    loc = urlsplit(r.headers["location"])
    assert loc.path == "/dev-issuer/logout"
    q = parse_qs(loc.query)
    assert q["post_logout_redirect_uri"] == ["http://testserver/login-required"]
    assert q["client_id"] == [CLIENT_ID]
    assert jwt.decode(q["id_token_hint"][0], options={"verify_signature": False})["sub"] == NURSE
    cleared = _cookie_header(r, "egenmon_session").lower()
    assert "max-age=0" in cleared
    end = client.get(r.headers["location"], follow_redirects=False)
    assert end.status_code == 303
    assert end.headers["location"] == "http://testserver/login-required"
    page = client.get("/login-required")
    assert page.status_code == 401
    assert "Logga in med demons utvecklingsinloggning" in page.text
    assert '<form method="get" action="/ui/login"><button type="submit" class="primary">Logga in</button>' in page.text
    assert client.get("/ui/alerts", follow_redirects=False).headers["location"].startswith("/ui/login")


def test_unreachable_issuer_is_a_swedish_page(seed: Seed, dev_keys: DevIssuerKeys) -> None:
    # Nothing answers on the discovery URL: the test client's own base is not a server.
    settings = make_settings(seed.url, oidc_provider_name="SITHS-kort (Region Test)")
    with TestClient(create_app(settings, dev_keys=dev_keys)) as c:
        c.app.state.oidc.http = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(502)))  # type: ignore[attr-defined]
        r = c.get("/ui/login", follow_redirects=False)
        assert r.status_code == 503
        assert "Inloggningstjänsten svarar inte just nu" in r.text
        assert "SITHS-kort (Region Test)" in c.get("/login-required").text


def test_person_without_active_staff_row_gets_a_forbidden_page(client: TestClient, seed: Seed) -> None:
    back = _pick(client, _authorize(client))
    # The IdP vouches for the person; egenmon no longer has them as active staff.
    with psycopg.connect(seed.url) as conn:
        conn.execute("UPDATE staff SET active = false WHERE subject = %s", (NURSE,))
    r = client.get("/ui/auth/callback", params=back, follow_redirects=False)
    assert r.status_code == 403
    assert "inget aktivt konto i egenmon" in r.text
    assert "egenmon_session=" not in r.headers.get("set-cookie", "")
    with psycopg.connect(seed.url) as conn:
        refused = conn.execute("SELECT staff_id, subject FROM audit_log WHERE action = 'login_refused'").fetchall()
    assert refused == [(None, NURSE)]


def test_subject_claim_maps_staff(seed: Seed, dev_keys: DevIssuerKeys) -> None:
    # A region that names staff by an HSA-id claim: the ID token's hsa_id picks the row.
    for c in _client(seed, dev_keys, oidc_subject_claim="hsa_id"):
        back = _pick(c, _authorize(c))
        r = c.get("/ui/auth/callback", params=back, follow_redirects=False)
        assert r.status_code == 303
        assert "Sjuksköterska Anna Demo" in c.get("/ui/alerts").text
        # A verifier for that claim refuses a token without it.
        verifier = c.app.state.id_token_verifier  # type: ignore[attr-defined]
        with pytest.raises(AuthError, match="no subject"):
            verifier.subject_of({"sub": NURSE})


def test_code_exchange_sends_verifier_and_client_secret() -> None:
    seen: list[httpx.Request] = []
    disc = {
        "issuer": "https://idp.example.se/realms/region",
        "authorization_endpoint": "https://idp.example.se/auth",
        "token_endpoint": "https://idp.example.se/token",
        "jwks_uri": "https://idp.example.se/jwks",
        "end_session_endpoint": "https://idp.example.se/logout",
    }

    def idp(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=disc)
        return httpx.Response(200, json={"id_token": "x", "access_token": "y", "token_type": "Bearer"})

    client = oidc.OidcClient(disc["issuer"], httpx.Client(transport=httpx.MockTransport(idp)))
    out = client.exchange_code(
        code="c-1", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, client_id="egenmon", client_secret="s:é"
    )
    assert out["id_token"] == "x"
    token_req = seen[-1]
    assert token_req.url == "https://idp.example.se/token"
    form = parse_qs(token_req.content.decode())
    assert form["code_verifier"] == ["v" * 43]
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == [REDIRECT_URI]
    assert "client_secret" not in form
    # client_secret_basic with the parts form-urlencoded first (RFC 6749 §2.3.1).
    assert token_req.headers["authorization"] == oidc.basic_auth("egenmon", "s:é")
    assert oidc.basic_auth("egenmon", "s:é") == "Basic ZWdlbm1vbjpzJTNBJUMzJUE5"
    # Discovery is cached: one fetch for the exchange and the logout URL.
    url = oidc.end_session_url(
        client.discovery(),
        client_id="egenmon",
        post_logout_redirect_uri="https://e.se/login-required",
        id_token_hint=None,
    )
    assert url is not None
    assert url.startswith("https://idp.example.se/logout?client_id=egenmon&post_logout_redirect_uri=")
    assert [r.url.path for r in seen] == ["/realms/region/.well-known/openid-configuration", "/token"]


def test_discovery_for_another_issuer_is_refused() -> None:
    def idp(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "https://evil.example", "authorization_endpoint": "x"})

    client = oidc.OidcClient("https://idp.example.se", httpx.Client(transport=httpx.MockTransport(idp)))
    with pytest.raises(oidc.OidcError, match=re.escape("expected 'https://idp.example.se'")):
        client.discovery()
