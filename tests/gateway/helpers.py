"""Test plumbing for the gateway: an in-process gateway over the virtual radio, and an MQTT
subscriber that collects what the gateway published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.service import Gateway
from gateway.settings import GatewaySettings

SCANNER = "simulators.ble.backend:VirtualScanner"
CLIENT = "simulators.ble.backend:VirtualClient"


def settings_for(state_dir: Path, mqtt_url: str, gateway_id: str = "gw-test-1", **kw: Any) -> GatewaySettings:
    base: dict[str, Any] = {
        "gateway_id": gateway_id,
        "state_dir": state_dir,
        "mqtt_url": mqtt_url,
        "ble_scanner_backend": SCANNER,
        "ble_client_backend": CLIENT,
        "ble_idle_timeout_s": 0.3,
        "ble_cooldown_s": 0.2,
        "ble_backoff_base_s": 0.05,
        "ble_backoff_cap_s": 0.2,
        "heartbeat_s": 0.3,
        "auto_accept": True,
    }
    base.update(kw)
    return GatewaySettings(**base)


@contextlib.asynccontextmanager
async def running(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    gw = Gateway(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop=stop))
    try:
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def until(pred: Callable[[], bool], limit_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def wait_sync(pred: Callable[[], bool], limit_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Collector:
    """Subscribes (persistent session, QoS 1) and keeps every message per topic, in order."""

    def __init__(
        self,
        url: str,
        topics: list[str],
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_message = self._on_message
        self.topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("collector could not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        for t in self.topics:
            client.subscribe(t, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _r in self.messages if t.endswith(suffix)]

    def batches(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads("/readings")]

    def readings(self) -> list[dict[str, Any]]:
        return [r for b in self.batches() for r in b["readings"]]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
