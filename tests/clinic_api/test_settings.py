from __future__ import annotations

import pytest
from pydantic import ValidationError

from clinic_api.settings import Settings


@pytest.mark.parametrize("pepper", ["change-me", "secret", "short"])
def test_placeholder_secrets_refused_outside_demo(pepper: str) -> None:
    with pytest.raises(ValidationError, match="real secret"):
        Settings(demo=False, oidc_issuer="https://idp.example.se", enrollment_pepper=pepper)


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
