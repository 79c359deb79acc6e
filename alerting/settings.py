"""Settings (environment prefix EGENMON_ALERTING_, plus plain DATABASE_URL)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGENMON_ALERTING_", extra="ignore")

    database_url: str = Field(
        default="postgresql://localhost/egenmon",
        validation_alias=AliasChoices("EGENMON_ALERTING_DATABASE_URL", "EGENMON_DATABASE_URL", "DATABASE_URL"),
    )
    sweep_interval_s: float = Field(default=300.0, gt=0)
    # The sweep evaluates patients in chunks of this size: bounded memory and short transactions.
    sweep_chunk: int = Field(default=5000, ge=1)
    # The sweep reads the observation window once per this many patients (one pass over the
    # window each): bounds its memory, about 1.7 GB of arrays per 100,000 patients.
    sweep_load_patients: int = Field(default=100_000, ge=1)
    # The sweep keeps its region between sweeps and reads only the rows ingested since the
    # last one (alerting/region_cache.py), with a full reload this often; 0: every sweep
    # reads the whole window (no cache).
    full_reload_s: float = Field(default=3600.0, ge=0)
    # How far back before the last read the next one looks by ingested_at (ingest's
    # transaction start): a row committed up to this long after its ingested_at is still
    # seen; a later one waits for the next full reload. Longer costs only the re-read rows.
    incremental_overlap_s: float = Field(default=300.0, ge=0)
    # Partitioned workers (alerting/partitions.py): patients fall into this many partitions
    # by a hash of their id, and each running worker owns a fair share of them (PostgreSQL
    # advisory locks). 1: no coordination, this worker evaluates everyone. Every worker of
    # a deployment must use the same number; more partitions than workers (e.g. 16) lets
    # the share even out when one is added or lost.
    partitions: int = Field(default=1, ge=1, le=4096)
    # How often a worker checks its share (and takes over the partitions of one that died).
    partition_check_s: float = Field(default=2.0, gt=0)
    # A chunk is loaded and evaluated at once but written in batches of this many patients,
    # each holding only its own patients: a notified patient waits at most for one batch.
    sweep_write_batch: int = Field(default=250, ge=1)
    # Notifications arriving within this window are evaluated together (one query per kind group).
    debounce_s: float = Field(default=0.05, ge=0)
    # At most this many notified patients per evaluation: a burst (a gateway's backlog, a
    # region's morning) is worked off in bounded batches, oldest first, instead of one
    # evaluation that keeps growing while readings arrive.
    notify_batch_max: int = Field(default=500, ge=1)
    escalate_high_after_min: float = Field(default=60.0, gt=0)
    escalate_critical_after_min: float = Field(default=15.0, gt=0)
    metrics_port: int = Field(default=9103, ge=0, le=65535)  # 0 disables the metrics endpoint
    # Messages to patients go out over MQTT (the broker's "platform" account); None: not sent
    # (they wait in patient_message until a publisher runs).
    mqtt_url: str | None = Field(default=None, validation_alias=AliasChoices("EGENMON_ALERTING_MQTT_URL", "MQTT_URL"))
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = None
    mqtt_client_id: str = "egenmon-alerting"
    # How often unsent messages are looked for (a new message is also sent right after the
    # evaluation that queued it).
    feedback_poll_s: float = Field(default=2.0, gt=0)
    # Persistent MQTT session (acknowledgements wait on the broker while alerting is away);
    # a broker that no longer has it gets every retained gateway config again.
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    # Gateway configs (gateway_config.py): the watermark query this often, every gateway this often.
    config_poll_s: float = Field(default=5.0, gt=0)
    config_reconcile_s: float = Field(default=300.0, gt=0)
    # Measurement receipts (receipts.py): on/off, the age past which a reading is a backlog
    # (one summary instead), and how long a receipt is worth showing.
    receipts: bool = True
    receipt_max_age_min: float = Field(default=60.0, gt=0)
    receipt_ttl_min: float = Field(default=10.0, gt=0)
    # How often the replay thread looks for queued threshold-replay requests (replay_worker.py); 0: never.
    replay_poll_s: float = Field(default=5.0, ge=0)
    log_level: str = "INFO"

    @property
    def escalation_deadlines_min(self) -> dict[str, float]:
        return {"high": self.escalate_high_after_min, "critical": self.escalate_critical_after_min}


@lru_cache
def get_settings() -> AlertingSettings:
    return AlertingSettings()
