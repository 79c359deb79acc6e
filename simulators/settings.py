"""Settings of the simulators, from the environment (plain DATABASE_URL / MQTT_URL too)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGENMON_SIM_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "EGENMON_DATABASE_URL")
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883", validation_alias=AliasChoices("MQTT_URL", "EGENMON_MQTT_URL")
    )
    seed: int = 1
    patients: int = 50
    gateway_prefix: str = "gw"


@lru_cache
def get_settings() -> SimulatorSettings:
    return SimulatorSettings()
