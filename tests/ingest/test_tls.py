"""Ingest over TLS to a real Mosquitto listener with a CA of the test's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from deploy.localstack import LocalMosquitto, free_port
from device_profiles.vocabulary import Kind
from ingest.service import IngestService
from tests.fixtures.pki import make_pki
from tests.ingest.helpers import Seed, batch_bytes, count, make_reading, publish, wait_until


def test_ingest_consumes_over_tls_with_its_ca(
    tmp_path: Path,
    db: psycopg.Connection[Any],
    seeded: Seed,
    make_mosquitto: Callable[..., LocalMosquitto],
    start_ingest: Callable[..., IngestService],
) -> None:
    pki = make_pki(tmp_path / "certs")
    ca, cert, key = pki.ca_file, pki.cert_file, pki.key_file
    tls_port = free_port()
    broker = make_mosquitto(
        extra_config=[f"listener {tls_port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
    )
    service = start_ingest(broker_url=f"mqtts://127.0.0.1:{tls_port}", mqtt_ca_file=ca)
    assert service.settings.mqtt_endpoint().tls
    publish(broker.url, seeded.topic, [batch_bytes(seeded.gateway_id, [make_reading(Kind.TEMPERATURE)])])
    wait_until(lambda: count(db, "SELECT count(*) FROM reading_raw") == 1)
