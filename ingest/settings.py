"""Ingest configuration, from the environment (``EGENMON_INGEST_*``, plus plain ``DATABASE_URL``/``MQTT_URL``)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.errors import ConfigError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where and how to connect, resolved from the URL and the TLS settings."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGENMON_INGEST_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="postgresql://egenmon@127.0.0.1:5432/egenmon",
        validation_alias=AliasChoices("database_url", "DATABASE_URL", "EGENMON_INGEST_DATABASE_URL"),
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        validation_alias=AliasChoices("mqtt_url", "MQTT_URL", "EGENMON_INGEST_MQTT_URL"),
    )
    # None: TLS unless the URL is plain mqtt:// to a loopback address.
    mqtt_tls: bool | None = None
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # The client id names the persistent session: stable per worker, unique across workers.
    client_id: str = Field(default_factory=lambda: f"egenmon-ingest-{socket.gethostname()}"[:64])
    # How long the broker keeps our session (and queues readings) while we are away.
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    # MQTT 5 Receive Maximum: un-acked messages the broker may have in flight to us.
    max_inflight: int = Field(default=10_000, ge=1, le=65_535)
    keepalive_s: int = Field(default=30, ge=5)
    # One transaction holds up to this many messages (or bytes), or what arrived in
    # flush_interval_s after the first one.
    batch_max_messages: int = Field(default=2_000, ge=1)
    # ~10,000 readings: smaller batches let parsing the next one overlap storing this one
    # (16 MiB batches measured ~10 % slower end to end for 100-reading messages).
    batch_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    flush_interval_s: float = Field(default=0.05, gt=0, le=10)
    # Writer threads, each with its own PostgreSQL connection: while one waits for its
    # commit, the next batch is already being written.
    writers: int = Field(default=2, ge=1, le=8)
    # Worker processes started by one `egenmon-ingest run` (ingest/supervisor.py): one
    # process parses on one core, so more cores take more processes.
    processes: int = Field(default=1, ge=1, le=64)
    # How long a busy thread may hold the GIL before the network thread gets it back.
    # Python's 5 ms starves paho's network thread on small messages; 0.5 ms cost ~10 % of
    # the worker's CPU in GIL hand-overs between parser and writers under batched load.
    gil_switch_interval_s: float = Field(default=0.002, gt=0, le=0.1)
    db_retry_max_s: float = Field(default=5.0, gt=0)
    # Dead letters older than this are deleted (ingest/retention.py); 0 keeps them forever.
    dead_letter_retention_days: int = Field(default=30, ge=0)
    # How often a worker prunes them (the first time one interval after it started).
    dead_letter_prune_interval_s: float = Field(default=3600.0, gt=0)
    metrics_host: str = "127.0.0.1"
    # 0 picks a free port (tests); the bound port is logged.
    metrics_port: int = Field(default=9105, ge=0, le=65_535)
    log_level: str = "INFO"

    @field_validator("mqtt_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if urlsplit(url).scheme not in {"mqtt", "mqtts"}:
            raise ValueError("MQTT_URL must start with mqtt:// or mqtts://")
        return url

    @model_validator(mode="after")
    def _metrics_ports_fit(self) -> IngestSettings:
        last = self.metrics_port + self.processes - 1
        if self.metrics_port and last > 65_535:
            raise ValueError(f"metrics ports {self.metrics_port}..{last} exceed 65535")
        return self

    def mqtt_endpoint(self) -> MqttEndpoint:
        parts = urlsplit(self.mqtt_url)
        host = parts.hostname or "127.0.0.1"
        tls = self.mqtt_tls if self.mqtt_tls is not None else parts.scheme == "mqtts" or not _is_loopback(host)
        if parts.scheme == "mqtts" and self.mqtt_tls is False:
            raise ConfigError("mqtts:// URL with EGENMON_INGEST_MQTT_TLS=false")
        port = parts.port or (8883 if tls else 1883)
        username = self.mqtt_username or (unquote(parts.username) if parts.username else None)
        password = (
            self.mqtt_password.get_secret_value()
            if self.mqtt_password
            else (unquote(parts.password) if parts.password else None)
        )
        return MqttEndpoint(host=host, port=port, tls=tls, username=username, password=password)
