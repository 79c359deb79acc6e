"""Settings (pydantic-settings, env prefix EGENMON_CLINIC_, plus plain DATABASE_URL)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from clinic_api.errors import ConfigError

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "placeholder", "demo"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGENMON_CLINIC_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="postgresql://localhost/egenmon",
        validation_alias=AliasChoices("DATABASE_URL", "EGENMON_CLINIC_DATABASE_URL"),
    )
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The URL browsers and gateways use to reach this service (issuer of the dev tokens).
    public_base_url: str = "http://127.0.0.1:8000"
    # Local demo: enables the development OIDC issuer and its login page.
    demo: bool = False
    # OIDC: a region plugs in its identity provider here (SITHS in production).
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    # Expected ``aud`` of bearer tokens that API clients send.
    oidc_audience: str = "egenmon-clinic"
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    # The pages' sign-in (authorization-code flow with PKCE): the client registered at the IdP.
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_client_secret_file: Path | None = None
    oidc_redirect_uri: str | None = None
    # The ID-token claim that names the staff row (``staff.subject``), e.g. an HSA-id claim.
    oidc_subject_claim: str = Field(default="sub", min_length=1, max_length=100)
    # How the login-required page names the IdP to staff.
    oidc_provider_name: str | None = None
    dev_token_ttl_s: int = Field(default=8 * 3600, ge=60)
    # The pages' session cookie: signed with this key, valid this long (one working shift).
    session_secret: SecretStr = SecretStr("change-me")
    session_secret_file: Path | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=300, le=7 * 24 * 3600)
    # Secure flag on the pages' cookies; only the plain-http demo may turn it off.
    cookie_secure: bool = True
    # Origins (scheme://host[:port]) besides the request's own Host that may send
    # cookie-authenticated changes: the browser-facing address behind a TLS proxy.
    # Comma-separated in the environment.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Gateway enrollment.
    enrollment_code_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    mqtt_public_url: str = "mqtts://localhost:8883"
    mqtt_ca_cert_pem: str | None = None
    # Pepper mixed into enrollment-code hashes; must be a real secret outside the demo.
    enrollment_pepper: str = "change-me"
    # How often the alert-queue page polls for changed cards, seconds.
    queue_refresh_s: int = Field(default=10, ge=5)
    # How long after "Avsluta" the same staff member may press "Ångra", seconds.
    undo_resolve_s: int = Field(default=30, ge=0, le=3600)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        out = []
        for v in value:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"allowed origin {v!r} must be scheme://host[:port] without a path")
            out.append(f"{parts.scheme}://{parts.netloc}".lower())
        return out

    @model_validator(mode="after")
    def _check(self) -> Self:
        # Secret files (e.g. /run/secrets/...) win over the plain variables.
        if self.oidc_client_secret_file is not None:
            self.oidc_client_secret = SecretStr(_read_secret(self.oidc_client_secret_file, "OIDC_CLIENT_SECRET_FILE"))
        if self.session_secret_file is not None:
            self.session_secret = SecretStr(_read_secret(self.session_secret_file, "SESSION_SECRET_FILE"))
        if not self.demo:
            if _placeholder(self.enrollment_pepper):
                raise ConfigError("EGENMON_CLINIC_ENROLLMENT_PEPPER must be a real secret outside the local demo")
            if not self.oidc_issuer:
                raise ConfigError("EGENMON_CLINIC_OIDC_ISSUER is required outside the local demo")
            if not self.oidc_client_id:
                raise ConfigError("EGENMON_CLINIC_OIDC_CLIENT_ID is required outside the local demo")
            if _placeholder(self.session_secret.get_secret_value()):
                raise ConfigError("EGENMON_CLINIC_SESSION_SECRET must be a real secret outside the local demo")
            if not self.cookie_secure:
                raise ConfigError("EGENMON_CLINIC_COOKIE_SECURE=false is only for the plain-http local demo")
        return self

    @property
    def session_secret_is_placeholder(self) -> bool:
        return _placeholder(self.session_secret.get_secret_value())

    @property
    def client_id(self) -> str:
        # The demo's pages are a client of the dev issuer under the API audience's name.
        return self.oidc_client_id or self.oidc_audience

    @property
    def redirect_uri(self) -> str:
        return self.oidc_redirect_uri or self.public_base_url.rstrip("/") + "/ui/auth/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.public_base_url.rstrip("/") + "/login-required"

    @property
    def provider_name(self) -> str:
        if self.oidc_provider_name:
            return self.oidc_provider_name
        if self.demo and not self.oidc_issuer:
            return "demons utvecklingsinloggning"
        return "SITHS-kort via regionens identitetstjänst"

    @property
    def secure_cookies(self) -> bool:
        """Secure everywhere except the demo served over plain http (a browser would drop them)."""
        if not self.demo:
            return True
        return self.cookie_secure and urlsplit(self.public_base_url).scheme == "https"

    @property
    def dev_issuer(self) -> str:
        return self.public_base_url.rstrip("/") + "/dev-issuer"

    @property
    def effective_issuer(self) -> str:
        return self.oidc_issuer or self.dev_issuer


def _placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 16


def _read_secret(path: Path, name: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"EGENMON_CLINIC_{name}: cannot read {path}: {err.strerror}") from err
    if not value:
        raise ConfigError(f"EGENMON_CLINIC_{name}: {path} is empty")
    return value


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once; tests pass their own Settings to create_app."""
    return Settings()
