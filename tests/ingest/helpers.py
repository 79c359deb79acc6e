"""Building readings and batches, publishing them, seeding the database: shared by ingest tests."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_profiles.vocabulary import COMPONENTS, Kind
from device_profiles.wire import DeviceInfo, Reading, ReadingBatch, Value, reading_id, readings_topic

# One plausible reading per kind (component -> value in the stored unit).
SAMPLE_VALUES: dict[Kind, dict[str, float]] = {
    Kind.BLOOD_PRESSURE: {"systolic": 128, "diastolic": 82, "mean_arterial": 97, "pulse": 68},
    Kind.GLUCOSE_CAPILLARY: {"glucose": 6.2},
    Kind.GLUCOSE_CGM: {"glucose_interstitial": 7.1},
    Kind.WEIGHT: {"weight": 82.4, "bmi": 26.1},
    Kind.BODY_COMPOSITION: {"body_fat": 24.0, "weight": 82.0},
    Kind.SPO2: {"spo2": 96, "pulse": 70},
    Kind.TEMPERATURE: {"temperature": 36.9},
    Kind.SPIROMETRY: {"pef": 420, "fev1": 2.9, "fvc": 3.8},
    Kind.SYMPTOMS: {"breathlessness_worse": 1, "cat_score": 12},
}

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def make_reading(
    kind: Kind,
    *,
    serial: str = "SN-1",
    seq: int = 0,
    measured_at: datetime | None = None,
    values: dict[str, float] | None = None,
    flags: Sequence[str] = (),
    battery_pct: int | None = None,
) -> Reading:
    measured = measured_at or T0 + timedelta(minutes=seq)
    vals = values if values is not None else SAMPLE_VALUES[kind]
    return Reading(
        reading_id=reading_id(serial, kind, seq),
        device=DeviceInfo(
            address=f"AA:BB:CC:{serial[-5:]}", model=f"model-{kind.value}", serial=serial, battery_pct=battery_pct
        ),
        kind=kind,
        measured_at=measured,
        received_at=measured + timedelta(seconds=2),
        values={name: Value(value=v, unit=COMPONENTS[name].unit) for name, v in vals.items()},
        flags=list(flags),
        raw=base64.b64encode(f"{kind}:{seq}".encode()).decode(),
    )


def batch_bytes(gateway_id: str, readings: Sequence[Reading], seq: int = 1) -> bytes:
    return ReadingBatch(
        gateway_id=gateway_id, seq=seq, sent_at=datetime.now(UTC), readings=list(readings)
    ).to_json_bytes()


def mqtt_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


class Publisher:
    """A QoS 1 publisher that waits for the broker's acknowledgements."""

    def __init__(self, url: str, client_id: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        host, port = mqtt_host_port(url)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payloads: Iterable[bytes], *, retain: bool = False) -> None:
        infos = [self.client.publish(topic, p, qos=1, retain=retain) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(url: str, topic: str, payloads: Iterable[bytes], *, retain: bool = False) -> None:
    pub = Publisher(url)
    try:
        pub.publish(topic, payloads, retain=retain)
    finally:
        pub.close()


def purge_session(url: str, client_id: str) -> None:
    """End a persistent session so it stops taking a share of later tests' messages."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    host, port = mqtt_host_port(url)
    try:
        client.connect(host, port, clean_start=True, properties=props)
    except OSError:
        return  # the broker is gone, and its sessions with it
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last value {value!r})")
        time.sleep(interval_s)


@dataclass(frozen=True)
class Seed:
    unit_id: uuid.UUID
    patient_id: uuid.UUID
    gateway_id: str
    topic: str


def seed_patient(
    conn: psycopg.Connection[Any],
    *,
    gateway_id: str | None = None,
    valid_from: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    valid_to: datetime | None = None,
    pseudonym: str | None = None,
) -> Seed:
    """A care unit, a patient (pseudonymous), a gateway and its assignment to the patient."""
    gw = gateway_id or f"gw-{uuid.uuid4().hex[:10]}"
    unit = conn.execute(
        "INSERT INTO care_unit (code, name) VALUES (%s, 'Hjärtsviktsmottagningen') "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        ("hsv",),
    ).fetchone()
    assert unit
    pseudo = pseudonym or f"P-{uuid.uuid4().hex[:8]}"
    patient = conn.execute(
        "INSERT INTO patient (pseudonym, display_name, birth_year, unit_id)"
        " VALUES (%s, 'Testperson', 1912, %s) RETURNING id",
        (pseudo, unit[0]),
    ).fetchone()
    assert patient
    conn.execute("INSERT INTO gateway (id) VALUES (%s) ON CONFLICT DO NOTHING", (gw,))
    conn.execute(
        "INSERT INTO gateway_assignment (gateway_id, patient_id, valid) VALUES (%s, %s, tstzrange(%s, %s))",
        (gw, patient[0], valid_from, valid_to),
    )
    return Seed(unit[0], patient[0], gw, readings_topic(gw))


def count(conn: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])
