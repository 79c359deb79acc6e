"""Settings: URLs, TLS defaults, environment names."""

from __future__ import annotations

import pytest

from ingest.errors import ConfigError
from ingest.settings import IngestSettings


def test_plain_mqtt_on_loopback_is_the_only_case_without_tls() -> None:
    assert IngestSettings(mqtt_url="mqtt://127.0.0.1:1883").mqtt_endpoint().tls is False
    assert IngestSettings(mqtt_url="mqtt://localhost").mqtt_endpoint().tls is False
    remote = IngestSettings(mqtt_url="mqtt://broker.region.example").mqtt_endpoint()
    assert (remote.tls, remote.port) == (True, 8883)
    assert IngestSettings(mqtt_url="mqtts://127.0.0.1").mqtt_endpoint().tls is True


def test_tls_can_be_turned_off_explicitly_but_not_for_mqtts() -> None:
    assert IngestSettings(mqtt_url="mqtt://10.0.0.5:1883", mqtt_tls=False).mqtt_endpoint().tls is False
    with pytest.raises(ConfigError):
        IngestSettings(mqtt_url="mqtts://10.0.0.5", mqtt_tls=False).mqtt_endpoint()


def test_credentials_from_url_or_settings() -> None:
    ep = IngestSettings(mqtt_url="mqtts://ingest:s%40cret@broker:8884").mqtt_endpoint()
    assert (ep.host, ep.port, ep.username, ep.password) == ("broker", 8884, "ingest", "s@cret")
    ep = IngestSettings(mqtt_url="mqtts://broker", mqtt_username="u", mqtt_password="p").mqtt_endpoint()
    assert (ep.username, ep.password) == ("u", "p")


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@db/egenmon")
    monkeypatch.setenv("MQTT_URL", "mqtts://broker:8883")
    monkeypatch.setenv("EGENMON_INGEST_CLIENT_ID", "ingest-a")
    monkeypatch.setenv("EGENMON_INGEST_BATCH_MAX_MESSAGES", "10")
    s = IngestSettings()
    assert (s.database_url, s.mqtt_url, s.client_id, s.batch_max_messages) == (
        "postgresql://x@db/egenmon",
        "mqtts://broker:8883",
        "ingest-a",
        10,
    )


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="mqtt"):
        IngestSettings(mqtt_url="http://broker")
