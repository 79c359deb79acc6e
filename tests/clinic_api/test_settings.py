from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clinic_api.settings import Settings


@pytest.mark.parametrize("pepper", ["change-me", "secret", "short"])
def test_placeholder_secrets_refused_outside_demo(pepper: str) -> None:
    with pytest.raises(ValidationError, match="real secret"):
        Settings(demo=False, oidc_issuer="https://idp.example.se", oidc_client_id="c", enrollment_pepper=pepper)


def test_issuer_required_outside_demo() -> None:
    with pytest.raises(ValidationError, match="OIDC_ISSUER"):
        Settings(demo=False, enrollment_pepper="a-real-long-secret-value-123")


def test_demo_accepts_placeholders_and_uses_dev_issuer() -> None:
    s = Settings(demo=True, public_base_url="http://127.0.0.1:9000")
    assert s.effective_issuer == "http://127.0.0.1:9000/dev-issuer"


def test_env_prefix_and_plain_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/egenmon")
    monkeypatch.setenv("EGENMON_CLINIC_DEMO", "1")
    monkeypatch.setenv("EGENMON_CLINIC_OIDC_AUDIENCE", "aud-x")
    s = Settings()
    assert s.database_url == "postgresql://db.example/egenmon"
    assert s.oidc_audience == "aud-x"


PRODUCTION = {
    "demo": False,
    "oidc_issuer": "https://idp.example.se/realms/region",
    "oidc_client_id": "egenmon-clinic",
    "enrollment_pepper": "a-real-long-secret-value-123",
    "session_secret": "another-real-long-secret-456",
}


def test_production_settings_and_their_defaults() -> None:
    s = Settings(**PRODUCTION, public_base_url="https://egenmon.region.se")
    assert s.client_id == "egenmon-clinic"
    assert s.redirect_uri == "https://egenmon.region.se/ui/auth/callback"
    assert s.post_logout_redirect_uri == "https://egenmon.region.se/login-required"
    assert s.oidc_subject_claim == "sub"
    assert s.session_ttl_s == 8 * 3600
    assert s.secure_cookies
    assert s.oidc_client_secret is None
    assert s.provider_name == "SITHS-kort via regionens identitetstjänst"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("oidc_client_id", "OIDC_CLIENT_ID is required"),
        ("session_secret", "SESSION_SECRET must be a real secret"),
    ],
)
def test_sign_in_settings_required_outside_demo(missing: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{k: v for k, v in PRODUCTION.items() if k != missing})


def test_plain_http_cookies_only_in_the_demo() -> None:
    with pytest.raises(ValidationError, match="COOKIE_SECURE=false"):
        Settings(**PRODUCTION, cookie_secure=False)
    # Outside the demo cookies are Secure even if the base URL was mistyped as http.
    assert Settings(**PRODUCTION, public_base_url="http://egenmon.region.se").secure_cookies
    assert not Settings(demo=True, public_base_url="http://127.0.0.1:8000").secure_cookies
    assert Settings(demo=True, public_base_url="https://demo.example.se").secure_cookies


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "client").write_text("s3cr3t-from-file\n")
    (tmp_path / "session").write_text("a-session-secret-from-a-file\n")
    base = {k: v for k, v in PRODUCTION.items() if k != "session_secret"}
    s = Settings(**base, oidc_client_secret_file=tmp_path / "client", session_secret_file=tmp_path / "session")
    assert s.oidc_client_secret is not None
    assert s.oidc_client_secret.get_secret_value() == "s3cr3t-from-file"
    assert s.session_secret.get_secret_value() == "a-session-secret-from-a-file"
    assert "s3cr3t" not in repr(s)
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(**PRODUCTION, oidc_client_secret_file=tmp_path / "absent")
