"""Authentication: tokens are checked for signature, issuer, audience, expiry; staff by sub."""

from __future__ import annotations

import time
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from clinic_api.app import create_app
from clinic_api.auth import DevIssuerKeys
from tests.clinic_api.conftest import NURSE, Seed, TestClient, make_settings

ISSUER = "http://testserver/dev-issuer"


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    # Token checks only read: share one seeded database across the module.
    return shared_client


AUD = "egenmon-clinic"


def _dev_keys(client: TestClient) -> DevIssuerKeys:
    keys: DevIssuerKeys = client.app.state.dev_keys  # type: ignore[attr-defined]
    return keys


def _token(client: TestClient, **override: Any) -> str:
    keys = _dev_keys(client)
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUD, "sub": NURSE, "iat": now, "exp": now + 600}
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, keys.private_key, algorithm="RS256", headers={"kid": keys.kid})


def test_valid_dev_token_reaches_patient_data(client: TestClient) -> None:
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {_token(client)}"})
    assert r.status_code == 200
    assert len(r.json()) == 3  # MON-NORD's three demo patients


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "token expired"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "https://evil.example/issuer"}, "wrong issuer"),
        ({"exp": None}, "invalid token"),
    ],
)
def test_bad_claims_are_rejected(client: TestClient, override: dict[str, Any], reason: str) -> None:
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {_token(client, **override)}"})
    assert r.status_code == 401
    assert r.json()["detail"].startswith(reason)
    assert r.headers["www-authenticate"] == "Bearer"


def test_signature_by_another_key_is_rejected(client: TestClient) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUD, "sub": NURSE, "exp": now + 600},
        other,
        algorithm="RS256",
        headers={"kid": _dev_keys(client).kid},
    )
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_hs256_with_public_key_is_rejected(client: TestClient) -> None:
    # Algorithm confusion: an HMAC token keyed with something public must not pass.
    tok = jwt.encode({"iss": ISSUER, "aud": AUD, "sub": NURSE, "exp": int(time.time()) + 600}, "x" * 32)
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwdw==", "Bearer not.a.jwt"])
def test_missing_or_malformed_tokens(client: TestClient, header: str) -> None:
    r = client.get("/api/v1/alerts", headers={"Authorization": header} if header else {})
    assert r.status_code == 401


def test_unknown_subject_is_forbidden(client: TestClient) -> None:
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {_token(client, sub='nobody')}"})
    assert r.status_code == 403


def test_inactive_staff_is_forbidden(fresh_client: TestClient, fresh_seed: Seed) -> None:
    client = fresh_client
    with psycopg.connect(fresh_seed.url) as conn:
        conn.execute("UPDATE staff SET active = false WHERE subject = %s", (NURSE,))
    r = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {_token(client)}"})
    assert r.status_code == 403


def test_discovery_and_jwks_verify_issued_tokens(client: TestClient) -> None:
    conf = client.get("/dev-issuer/.well-known/openid-configuration").json()
    assert conf["issuer"] == ISSUER
    jwks = client.get("/dev-issuer/jwks").json()
    tok = client.post("/dev-issuer/token", json={"subject": NURSE}).json()["access_token"]
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(tok, key, algorithms=["RS256"], audience=AUD, issuer=ISSUER)
    assert claims["sub"] == NURSE


def test_issuer_page_lists_demo_staff_only_within_a_sign_in(client: TestClient) -> None:
    # The old shortcut (POST /dev-issuer/login set a token cookie) is gone: sign-in is the
    # code flow (test_sign_in.py); the old address starts it.
    r = client.get("/dev-issuer/login", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login"
    assert client.post("/dev-issuer/login", data={"subject": NURSE}).status_code == 405
    assert client.get("/dev-issuer/authorize", follow_redirects=False).status_code == 400


def test_pages_redirect_to_sign_in_without_session(client: TestClient) -> None:
    r = client.get("/ui/alerts", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Falerts"


def test_bearer_token_is_not_read_from_the_old_cookie(client: TestClient) -> None:
    # A raw IdP token in a cookie is not a session: only the signed session cookie is.
    client.cookies.set("egenmon_session", _token(client))
    try:
        assert client.get("/ui/alerts", follow_redirects=False).status_code == 303
        assert client.get("/api/v1/patients").status_code == 401
    finally:
        client.cookies.clear()


def test_dev_issuer_is_absent_outside_demo(shared_seed: Seed) -> None:
    settings = make_settings(
        shared_seed.url,
        demo=False,
        oidc_issuer="https://idp.example.se/realms/region",
        oidc_client_id="egenmon-clinic",
        enrollment_pepper="a-real-long-secret-value-123",
        session_secret="another-real-long-secret-456",
    )
    with TestClient(create_app(settings)) as c:
        assert c.get("/dev-issuer/jwks").status_code == 404
        assert c.post("/dev-issuer/token", json={"subject": NURSE}).status_code == 404
        assert c.get("/dev-issuer/authorize").status_code == 404
        assert c.get("/api/v1/patients").status_code == 401
        assert c.get("/ui/alerts", follow_redirects=False).headers["location"] == "/ui/login?next=%2Fui%2Falerts"
        page = c.get("/login-required")
        assert "SITHS-kort via regionens identitetstjänst" in page.text
