"""Ingest over TLS to a real Mosquitto listener with a CA of the test's own."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.localstack import LocalMosquitto, free_port
from device_profiles.vocabulary import Kind
from ingest.service import IngestService
from tests.ingest.helpers import Seed, batch_bytes, count, make_reading, publish, wait_until


def _write_ca_and_server_cert(d: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egenmon test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = d / "ca.pem", d / "server.pem", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for p in paths:
        p.chmod(0o644)
    return paths


def test_ingest_consumes_over_tls_with_its_ca(
    tmp_path: Path,
    db: psycopg.Connection[Any],
    seeded: Seed,
    make_mosquitto: Callable[..., LocalMosquitto],
    start_ingest: Callable[..., IngestService],
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    certs.chmod(0o755)
    ca, cert, key = _write_ca_and_server_cert(certs)
    tls_port = free_port()
    broker = make_mosquitto(
        extra_config=[f"listener {tls_port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
    )
    service = start_ingest(broker_url=f"mqtts://127.0.0.1:{tls_port}", mqtt_ca_file=ca)
    assert service.settings.mqtt_endpoint().tls
    publish(broker.url, seeded.topic, [batch_bytes(seeded.gateway_id, [make_reading(Kind.TEMPERATURE)])])
    wait_until(lambda: count(db, "SELECT count(*) FROM reading_raw") == 1)
