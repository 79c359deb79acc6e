"""Gateway configuration: a TOML file plus ``EGENMON_GATEWAY_*`` environment variables.

Precedence: environment > TOML file > defaults. The identity and broker credentials
written by ``enroll`` live in the state directory (``identity.json``) and fill in what the
file and environment leave unset.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_BACKEND = ""  # empty: bleak's own platform backend (BlueZ on Raspberry Pi OS)
IDENTITY_FILE = "identity.json"
OUTPUT_NAMES = ("voice", "screen", "led")


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGENMON_GATEWAY_", extra="forbid")

    gateway_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    state_dir: Path = Path("/var/lib/egenmon-gateway")
    mqtt_url: str | None = None  # mqtt://host:1883 or mqtts://host:8883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_keepalive_s: int = 30
    # Dotted path "module:Class" or "module.Class" of a bleak scanner / client backend.
    ble_scanner_backend: str = DEFAULT_BACKEND
    ble_client_backend: str = DEFAULT_BACKEND
    ble_connect_attempts: int = Field(default=4, ge=1)
    ble_backoff_base_s: float = Field(default=1.0, gt=0)
    ble_backoff_cap_s: float = Field(default=60.0, gt=0)
    ble_idle_timeout_s: float = Field(default=5.0, gt=0)
    ble_transfer_timeout_s: float = Field(default=120.0, gt=0)
    ble_cooldown_s: float = Field(default=10.0, ge=0)
    # Accept every device whose advertisement matches a profile (demo / tests); otherwise
    # only paired devices and those the platform's config allows.
    auto_accept: bool = False
    # The patient's User ID on shared cuffs/scales (BLS/WSS User ID; `pair --user` sets it
    # per device). Readings of other users are kept, flagged `other_user`.
    patient_user_index: int = Field(default=1, ge=0, le=254)
    # Readings without time stamp or record number: the same bytes again from the same
    # device within this long are a resend, not a new reading (outbox.ContentKey).
    resend_window_s: float = Field(default=86400.0, gt=0)
    # Scanner watchdog (Raspberry Pi BlueZ discovery that silently stops): with no
    # advertisement for this long the discovery is restarted (0 = off); after
    # `ble_adapter_reset_after` such restarts in a row with nothing heard, the adapter is
    # power-cycled, at most once per `ble_adapter_reset_min_interval_s`.
    ble_scan_watchdog_s: float = Field(default=900.0, ge=0)
    ble_adapter_reset_after: int = Field(default=2, ge=1)
    ble_adapter_reset_min_interval_s: float = Field(default=3600.0, ge=0)
    ble_adapter: str = "hci0"
    device_timezone: str = "Europe/Stockholm"
    vendor_profile_dirs: list[Path] = Field(default_factory=list)
    outbox_capacity: int = Field(default=100_000, ge=1)
    batch_max_readings: int = Field(default=200, ge=1, le=1000)
    max_inflight_batches: int = Field(default=8, ge=1)
    heartbeat_s: float = Field(default=60.0, gt=0)
    # A device clock further than this from the gateway's is corrected and flagged.
    clock_tolerance_s: float = Field(default=120.0, ge=0)
    # Schedule reminders: a scheduled measurement is overdue this long after its time, and
    # a reading from this long before the time counts for it.
    reminder_grace_s: float = Field(default=1800.0, ge=0)
    reminder_early_s: float = Field(default=3600.0, ge=0)
    clinic_url: str | None = None
    clinic_ca_file: Path | None = None
    metrics_port: int | None = None
    # Patient outputs (gateway/outputs/): comma-separated "voice,screen,led"; empty = only
    # feedback.json, exactly as before outputs existed.
    outputs: str = ""
    voice_name: str = "sv"  # espeak-ng voice
    voice_volume: int = Field(default=80, ge=0, le=100)  # percent of espeak-ng's full amplitude
    # No sound from START to END local time (Europe/Stockholm), "22-07"; empty = never quiet.
    voice_quiet_hours: str = Field(default="22-07", pattern=r"^(|([01]?\d|2[0-3])-([01]?\d|2[0-3]))$")
    # Write each spoken message to this WAV file instead of playing it (demo, tests, no sound card).
    voice_wav_path: Path | None = None
    screen_port: int = Field(default=8091, ge=0, le=65535)  # kiosk page on 127.0.0.1; 0 = any free port
    screen_refresh_s: int = Field(default=10, ge=2)
    led_chip: str = "/dev/gpiochip0"
    led_line: int = Field(default=17, ge=0)
    buzzer_line: int | None = Field(default=None, ge=0)
    # Local reminders (with outputs): shown reminder_grace_s after a scheduled time, escalated
    # to "call your care unit" this long after it; 0 = never escalate.
    reminder_escalate_s: float = Field(default=7200.0, ge=0)
    # A reading with no platform receipt within this long gets the gateway's own receipt.
    receipt_timeout_s: float = Field(default=30.0, gt=0)
    outputs_tick_s: float = Field(default=1.0, gt=0)

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, v: str) -> str:
        names = [n.strip() for n in v.split(",") if n.strip()]
        unknown = sorted(set(names) - set(OUTPUT_NAMES))
        if unknown:
            raise ValueError(f"unknown outputs {unknown}; known: {', '.join(OUTPUT_NAMES)}")
        return ",".join(dict.fromkeys(names))

    @property
    def output_names(self) -> list[str]:
        return [n for n in self.outputs.split(",") if n]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "gateway.sqlite3"

    @property
    def identity_path(self) -> Path:
        return self.state_dir / IDENTITY_FILE


def load_settings(config_file: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from ``config_file`` (TOML, optional), the environment, and the identity file."""
    data: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as f:
            data.update(tomllib.load(f))
    data.update(overrides)
    settings = GatewaySettings(**data)
    ident = settings.identity_path
    if ident.exists():
        stored = json.loads(ident.read_text())
        fill = {k: v for k, v in stored.items() if k in GatewaySettings.model_fields and getattr(settings, k) is None}
        if fill:
            settings = GatewaySettings(**{**data, **fill})
    return settings
