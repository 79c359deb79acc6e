"""Settings (pydantic-settings, env prefix EGENMON_CLINIC_, plus plain DATABASE_URL)."""

from __future__ import annotations

import functools
from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    oidc_audience: str = "egenmon-clinic"
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    dev_token_ttl_s: int = Field(default=8 * 3600, ge=60)
    # Cookie carrying the bearer token for the web pages.
    cookie_secure: bool = True
    # Gateway enrollment.
    enrollment_code_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    mqtt_public_url: str = "mqtts://localhost:8883"
    mqtt_ca_cert_pem: str | None = None
    # Pepper mixed into enrollment-code hashes; must be a real secret outside the demo.
    enrollment_pepper: str = "change-me"
    # How often the alert-queue page polls for changed cards, seconds.
    queue_refresh_s: int = Field(default=10, ge=5)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.demo:
            if self.enrollment_pepper.strip().lower() in PLACEHOLDER_SECRETS or len(self.enrollment_pepper) < 16:
                raise ConfigError("EGENMON_CLINIC_ENROLLMENT_PEPPER must be a real secret outside the local demo")
            if not self.oidc_issuer:
                raise ConfigError("EGENMON_CLINIC_OIDC_ISSUER is required outside the local demo")
        return self

    @property
    def dev_issuer(self) -> str:
        return self.public_base_url.rstrip("/") + "/dev-issuer"

    @property
    def effective_issuer(self) -> str:
        return self.oidc_issuer or self.dev_issuer


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once; tests pass their own Settings to create_app."""
    return Settings()
