"""The fleet generator against the real Mosquitto: every message is a valid ReadingBatch."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.localstack import free_port
from device_profiles.messages import GatewayStatus
from device_profiles.wire import (
    ReadingBatch,
    gateway_id_from_topic,
    parse_envelope,
    parse_reading,
    plausibility_problems,
)
from simulators.cohort import CohortConfig, generate_cohort
from simulators.fleet import Fleet, FleetError, Publisher, gateway_readings
from simulators.physiology import Habits


class Collector:
    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe("egenmon/v1/gw/+/+", qos=1)
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, n_readings: int, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                got = sum(
                    len(ReadingBatch.model_validate_json(p).readings)
                    for t, p in self.messages
                    if t.endswith("/readings")
                )
            if got >= n_readings:
                return
            time.sleep(0.1)
        raise AssertionError(f"received {got} of {n_readings} readings")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_backfill_publishes_valid_batches_for_every_gateway(mqtt_url: str) -> None:
    habits = Habits(duplicate_probability=0.05, clock_unset_probability=0.05)
    cohort = generate_cohort(CohortConfig(7, seed=11, days=3, habits=habits, gateway_prefix=f"t{uuid.uuid4().hex[:6]}"))
    collector = Collector(mqtt_url)
    publisher = Publisher(mqtt_url)
    publisher.connect()
    try:
        fleet = Fleet(cohort, publisher, batch_size=100)
        seen: list[int] = []
        stats = fleet.backfill(cohort.config.start + timedelta(days=3), progress=lambda g, r: seen.append(g))
        assert stats.gateways == 7
        assert seen == list(range(1, 8))
        collector.wait_for(stats.readings)
    finally:
        publisher.close()
        collector.close()
    per_gateway: dict[str, list[int]] = defaultdict(list)
    ids: list[uuid.UUID] = []
    flags: set[str] = set()
    statuses = {}
    ours = {p.gateway_id for p in cohort.patients}
    for topic, payload in collector.messages:
        if gateway_id_from_topic(topic.rsplit("/", 1)[0] + "/readings") not in ours:
            continue  # retained status of another test's gateways
        if topic.endswith("/status"):
            status = GatewayStatus.model_validate_json(payload)
            statuses[status.gateway_id] = status
            continue
        gw = gateway_id_from_topic(topic)
        env = parse_envelope(payload, gw)  # the two-step parse ingest uses
        batch = ReadingBatch.model_validate_json(payload)
        assert len(batch.readings) <= 100
        per_gateway[gw].append(env.seq)
        for doc in env.readings:
            r = parse_reading(doc)
            assert r.received_at >= r.measured_at or "device_clock_corrected" in r.flags
            assert plausibility_problems(r.kind, r.values) == []
            ids.append(r.reading_id)
            flags.update(r.flags)
    assert set(per_gateway) == {p.gateway_id for p in cohort.patients}
    assert set(statuses) == set(per_gateway)
    assert all(len(s.devices) >= 1 for s in statuses.values())
    for seqs in per_gateway.values():
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
    assert len(ids) == stats.readings
    assert len(set(ids)) < len(ids), "duplicate resends reuse the reading id"
    assert {"device_clock_unset", "device_clock_corrected"} <= flags


def test_reading_ids_are_stable_across_runs() -> None:
    cohort = generate_cohort(CohortConfig(2, seed=12, days=2))
    p = cohort.patients[0]
    lo = int(cohort.config.start.timestamp())
    a = gateway_readings(p, cohort.series(p), lo, lo + 2 * 86_400)
    b = gateway_readings(p, cohort.series(p), lo, lo + 2 * 86_400)
    assert [d["reading_id"] for d in a] == [d["reading_id"] for d in b]
    # Half-open windows: splitting the period loses and repeats nothing.
    c = gateway_readings(p, cohort.series(p), lo, lo + 86_400) + gateway_readings(
        p, cohort.series(p), lo + 86_400, lo + 2 * 86_400
    )
    assert sorted(d["reading_id"] for d in c) == sorted(d["reading_id"] for d in a)


def test_live_step_publishes_only_due_readings(mqtt_url: str) -> None:
    cohort = generate_cohort(CohortConfig(3, seed=13, days=2, gateway_prefix=f"l{uuid.uuid4().hex[:6]}"))
    publisher = Publisher(mqtt_url)
    publisher.connect()
    try:
        fleet = Fleet(cohort, publisher)
        start = cohort.config.start + timedelta(hours=21)
        n = fleet.live_step(start, start + timedelta(hours=1))
        publisher.flush()
    finally:
        publisher.close()
    # Patients 0 and 1 have CGM: 12 readings an hour each (day 0 after 20:00 is past the sensor warm-up).
    assert n >= 20
    assert fleet.stats.messages >= 2


def test_unreachable_broker_is_a_fleet_error() -> None:
    with pytest.raises((FleetError, OSError)):
        Publisher(f"mqtt://127.0.0.1:{free_port()}").connect(timeout_s=2)
    with pytest.raises(FleetError):
        Publisher("http://example.invalid").connect()


def test_live_runs_simulated_time_faster_and_stops_when_told(mqtt_url: str) -> None:
    cohort = generate_cohort(CohortConfig(2, seed=14, days=3, gateway_prefix=f"v{uuid.uuid4().hex[:6]}"))
    publisher = Publisher(mqtt_url)
    publisher.connect()
    stop = threading.Event()
    try:
        fleet = Fleet(cohort, publisher)
        start = cohort.config.start + timedelta(days=1)
        # One simulated hour per wall-clock second, stopped by a timer as Ctrl-C would.
        threading.Timer(2.5, stop.set).start()
        t0 = time.monotonic()
        stats = fleet.live(start, speed=3600, tick_s=0.2, stop=stop)
        elapsed = time.monotonic() - t0
    finally:
        publisher.close()
    assert 2.0 < elapsed < 10
    # Two simulated hours of two patients: CGM alone gives ~24 readings an hour.
    assert stats.readings >= 30
