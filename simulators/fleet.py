"""The fleet generator: publishes the MQTT wire format for many simulated gateways.

It stands in for thousands of real gateways when measuring ingest and alerting: each
simulated gateway publishes ``device_profiles.wire.ReadingBatch`` messages on its own
``readings_topic(gateway_id)`` with QoS 1 over MQTT 5, exactly as a gateway does.

Two phases:

* **backfill**: weeks of history published as fast as allowed (or at ``rate`` messages
  per second), with the historical ``measured_at``/``received_at``/``sent_at``;
* **live**: readings whose time has come are published as time passes, optionally with
  simulated time running ``speed`` times faster than the wall clock.

Messages are built as plain dictionaries (the validated pydantic models would cost more
than the publishing); tests check every message parses as a ``ReadingBatch``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_profiles.messages import DeviceStatus, GatewayStatus
from device_profiles.vocabulary import COMPONENTS
from device_profiles.wire import MAX_READINGS_PER_MESSAGE, SCHEMA_VERSION, reading_id, readings_topic, status_topic
from simulators.cohort import Cohort, PatientSpec
from simulators.errors import SimulatorError
from simulators.series import IntArray, KindSeries, PatientSeries, Quirk

log = logging.getLogger(__name__)

# The gateway forwards a reading this long after the device took it (BLE connect + decode).
FORWARD_DELAY_S = 30
# A device with an unset clock counts from its own epoch (the GATT Date Time default).
DEVICE_EPOCH = np.datetime64("2000-01-01T00:00:00", "s")


class FleetError(SimulatorError):
    """The broker refused the fleet or a publish was not acknowledged."""


def _iso(t_s: IntArray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(t_s.astype("datetime64[s]"), unit="s").tolist()]


def kind_readings(patient: PatientSpec, series: KindSeries, lo: int, hi: int) -> list[dict[str, Any]]:
    """Wire readings of one kind whose gateway receive time falls in [lo, hi)."""
    received = series.t_s + FORWARD_DELAY_S
    i, j = np.searchsorted(received, [lo, hi], side="left")
    if i >= j:
        return []
    sel = slice(int(i), int(j))
    t = series.t_s[sel]
    quirk = series.quirk[sel]
    device = next(d for d in patient.devices if d.kind is series.kind)
    device_doc = {
        "address": device.address,
        "model": device.model,
        "serial": device.serial,
        "firmware": device.firmware,
    }
    measured = _iso(t)
    rec = _iso(received[sel])
    # What the device itself stamped: its own epoch when the clock was never set.
    unset = quirk == Quirk.CLOCK_UNSET
    device_stamp = list(measured)
    if unset.any():
        # Time since the (simulated) battery change: a function of the reading alone, so
        # the reading id does not depend on which window of the series is published.
        offsets = t[unset] % (30 * 86_400)
        stamps = _iso((DEVICE_EPOCH.astype(np.int64) + offsets).astype(np.int64))
        for k, idx in enumerate(np.flatnonzero(unset).tolist()):
            device_stamp[idx] = stamps[k]
    columns = {name: arr[sel].tolist() for name, arr in series.values.items()}
    units = {name: COMPONENTS[name].unit.value for name in columns}
    ctx = series.context[sel].tolist()
    out: list[dict[str, Any]] = []
    for k in range(len(measured)):
        flags = [ctx[k]] if ctx[k] else []
        at = measured[k]
        if unset[k]:
            # The gateway notices the impossible device time and uses its own clock instead.
            flags += ["device_clock_unset", "device_clock_corrected"]
            at = rec[k]
        doc = {
            "reading_id": str(reading_id(device.serial, series.kind, device_stamp[k])),
            "device": device_doc,
            "kind": series.kind.value,
            "measured_at": at,
            "received_at": rec[k],
            "values": {name: {"value": columns[name][k], "unit": units[name]} for name in columns},
        }
        if flags:
            doc["flags"] = flags
        out.append(doc)
    dup = np.flatnonzero(quirk == Quirk.DUPLICATE_RESEND).tolist()
    # A resent stored record is byte-identical, so its reading id is the same.
    out.extend(out[d] for d in dup)
    return out


def gateway_readings(patient: PatientSpec, sim: PatientSeries, lo: int, hi: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for kind in sorted(sim.series, key=lambda k: k.value):
        docs.extend(kind_readings(patient, sim.series[kind], lo, hi))
    docs.sort(key=lambda d: str(d["received_at"]))
    return docs


@dataclass
class GatewayState:
    patient: PatientSpec
    sim: PatientSeries
    seq: int = 0


def batches(state: GatewayState, docs: list[dict[str, Any]], batch_size: int) -> Iterator[tuple[str, bytes, int]]:
    """(topic, payload, n_readings) for each batch; ``seq`` grows per gateway."""
    size = max(1, min(batch_size, MAX_READINGS_PER_MESSAGE))
    topic = readings_topic(state.patient.gateway_id)
    for k in range(0, len(docs), size):
        chunk = docs[k : k + size]
        state.seq += 1
        doc = {
            "schema": SCHEMA_VERSION,
            "gateway_id": state.patient.gateway_id,
            "seq": state.seq,
            "sent_at": max(str(d["received_at"]) for d in chunk),
            "readings": chunk,
        }
        yield topic, json.dumps(doc, separators=(",", ":")).encode(), len(chunk)


# --- MQTT -------------------------------------------------------------------------------


@dataclass
class Publisher:
    """One MQTT 5 connection with a bounded number of unacknowledged QoS 1 messages."""

    url: str
    client_id: str = field(default_factory=lambda: f"egenmon-fleet-{uuid.uuid4().hex[:8]}")
    max_inflight: int = 200
    _client: mqtt.Client | None = None
    _pending: collections.deque[mqtt.MQTTMessageInfo] = field(default_factory=collections.deque)
    _connected: threading.Event = field(default_factory=threading.Event)
    _error: str | None = None

    def connect(self, timeout_s: float = 10.0) -> None:
        u = urlparse(self.url)
        if u.scheme not in {"mqtt", "mqtts"}:
            raise FleetError(f"MQTT_URL must be mqtt:// or mqtts://, not {u.scheme!r}")
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        if u.username:
            client.username_pw_set(u.username, u.password)
        if u.scheme == "mqtts":
            client.tls_set()
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.connect(u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883))
        client.loop_start()
        self._client = client
        if not self._connected.wait(timeout_s) or self._error:
            self.close()
            raise FleetError(f"cannot connect to {u.hostname}:{u.port}: {self._error or 'timeout'}")

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._error = str(reason)
        self._connected.set()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._client is None:
            raise FleetError("publisher is not connected")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise FleetError(f"publish failed: {mqtt.error_string(info.rc)}")
        self._pending.append(info)
        while len(self._pending) > self.max_inflight:
            self._pending.popleft().wait_for_publish(timeout=30)

    def flush(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._pending:
            info = self._pending.popleft()
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise FleetError("broker did not acknowledge every message")

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def status_message(patient: PatientSpec, at: datetime, uptime_s: float) -> bytes:
    """The retained heartbeat a gateway publishes: online, outbox empty, its devices."""
    status = GatewayStatus(
        gateway_id=patient.gateway_id,
        sent_at=at,
        version="sim-1",
        uptime_s=uptime_s,
        outbox_depth=0,
        outbox_capacity=100_000,
        devices=[
            DeviceStatus(address=d.address, model=d.model, kind=d.kind.value, last_seen_at=at, battery_pct=80)
            for d in patient.devices
        ],
    )
    return status.model_dump_json(by_alias=True, exclude_none=True).encode()


@dataclass
class FleetStats:
    gateways: int = 0
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


class _RateLimiter:
    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval


Progress = Callable[[int, int], None]  # (gateways done, readings published)


@dataclass
class Fleet:
    """The gateways of a cohort, publishing through one connection."""

    cohort: Cohort
    publisher: Publisher
    batch_size: int = 288  # a day of CGM per message
    rate: float = 0.0  # messages per second; 0 = as fast as the broker acknowledges
    status: bool = True  # publish each gateway's retained status (the clinic's gateway page)
    states: list[GatewayState] = field(default_factory=list)
    stats: FleetStats = field(default_factory=FleetStats)

    def __post_init__(self) -> None:
        self._limiter = _RateLimiter(self.rate)

    def send(self, state: GatewayState, docs: list[dict[str, Any]]) -> None:
        for topic, payload, n in batches(state, docs, self.batch_size):
            self._limiter.wait()
            self.publisher.publish(topic, payload)
            self.stats.messages += 1
            self.stats.readings += n
            self.stats.bytes += len(payload)

    def backfill(self, until: datetime, progress: Progress | None = None) -> FleetStats:
        """Publish every gateway's history up to ``until`` (received time), gateway by gateway."""
        t0 = time.monotonic()
        lo = int(self.cohort.config.start.timestamp())
        hi = int(until.timestamp())
        for patient in self.cohort.patients:
            state = GatewayState(patient, self.cohort.series(patient))
            self.states.append(state)
            self.send(state, gateway_readings(patient, state.sim, lo, hi))
            if self.status:
                self.publisher.publish(
                    status_topic(patient.gateway_id), status_message(patient, until, hi - lo), retain=True
                )
            self.stats.gateways += 1
            if progress:
                progress(self.stats.gateways, self.stats.readings)
        self.publisher.flush()
        self.stats.seconds += time.monotonic() - t0
        return self.stats

    def live_step(self, lo: datetime, hi: datetime) -> int:
        """Publish what every gateway received in [lo, hi); return the number of readings."""
        before = self.stats.readings
        if not self.states:
            self.states = [GatewayState(p, self.cohort.series(p)) for p in self.cohort.patients]
        a, b = int(lo.timestamp()), int(hi.timestamp())
        for state in self.states:
            docs = gateway_readings(state.patient, state.sim, a, b)
            if docs:
                self.send(state, docs)
        return self.stats.readings - before

    def live(
        self,
        sim_start: datetime,
        *,
        speed: float = 1.0,
        tick_s: float = 1.0,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> FleetStats:
        """Run live until ``stop`` is set (or ``max_seconds`` pass); simulated time runs ``speed``x."""
        wall0 = time.monotonic()
        sim_clock = sim_start
        end = self.cohort.config.start.timestamp() + self.cohort.config.days * 86_400
        stop = stop or threading.Event()
        while not stop.is_set():
            if max_seconds is not None and time.monotonic() - wall0 >= max_seconds:
                break
            stop.wait(tick_s)
            elapsed = (time.monotonic() - wall0) * speed
            now = datetime.fromtimestamp(min(sim_start.timestamp() + elapsed, end), tz=UTC)
            self.live_step(sim_clock, now)
            sim_clock = now
            if progress:
                progress(len(self.states), self.stats.readings)
            if now.timestamp() >= end:
                log.info("live: the cohort's simulated period has ended")
                break
        self.publisher.flush()
        self.stats.seconds = time.monotonic() - wall0
        return self.stats
