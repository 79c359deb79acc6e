"""The MQTT side of a worker: paho client, callbacks, connection generations, ordered acks.

:class:`MqttShell` owns the paho client (MQTT 5, persistent session, ``manual_ack``). Its
network thread only turns a received message into an :class:`~ingest.pipeline.Incoming`
and queues it; :meth:`MqttShell.next_batch` hands the queue out in batches.

``Client.ack`` from a writer thread only appends a PUBACK to paho's outgoing deque and
wakes the network thread through its socket pair, the same path ``publish`` takes from
user threads. A PUBACK must never reach a *later* connection than the one its message
came on: after a reconnect the broker may have re-used the packet id for a different
message, which the stale PUBACK would then acknowledge before it is stored. So every
message carries the generation of its connection, the network thread bumps the
generation (under ``_gen_lock``) before each reconnect and on each disconnect, and
:meth:`MqttShell.ack` sends acks only for the current generation, under the same lock.
Messages of an old connection that were committed but not acknowledged are re-delivered
by the broker (persistent session) and counted as duplicates.

:class:`AckOrder` makes writers that commit concurrently acknowledge strictly in the
order their batches were numbered, so PUBACKs leave in the order the messages arrived.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from device_profiles.wire import READINGS_SUBSCRIPTION, TOPIC_ROOT
from ingest.metrics import Metrics
from ingest.pipeline import Incoming
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/status"


class MqttShell:
    """The paho client of one worker; ``retiring``: take over a session and unsubscribe."""

    def __init__(
        self, settings: IngestSettings, metrics: Metrics, stopping: threading.Event, *, retiring: bool = False
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.retiring = retiring
        # Messages received so far (the network thread only counts; retire() watches it).
        self.received = 0
        self.session_present: bool | None = None
        self.connected = False
        self.subscribed = threading.Event()
        self._stopping = stopping
        # SimpleQueue: the C implementation, cheapest put() for the network thread.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._gen_lock = threading.Lock()
        self._generation = 0
        self._m_readings = metrics.messages.labels(topic="readings")
        self._m_status = metrics.messages.labels(topic="status")
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        ep = s.mqtt_endpoint()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if ep.tls:
            client.tls_set(
                ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None,
                certfile=str(s.mqtt_cert_file) if s.mqtt_cert_file else None,
                keyfile=str(s.mqtt_key_file) if s.mqtt_key_file else None,
            )
        if ep.username:
            client.username_pw_set(ep.username, ep.password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        # Bounds how many un-acked messages we hold: the broker keeps the rest queued.
        props.ReceiveMaximum = self.settings.max_inflight
        return props

    # -- the network thread's callbacks ------------------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        with self._gen_lock:
            self._generation += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, rc: ReasonCode, props: Properties | None
    ) -> None:
        if rc.is_failure:
            log.warning("mqtt connect refused: %s", rc)
            return
        self.connected = True
        self.metrics.mqtt_connected.set(1)
        log.info("mqtt connected (session present: %s, client id %s)", flags.session_present, self.settings.client_id)
        if self.session_present is None:
            self.session_present = flags.session_present
        if self.retiring:
            # The broker stops handing us new messages; what it had queued for this session
            # still comes (MQTT 5, 3.10.4), and so does what it assigned us before this.
            client.unsubscribe([READINGS_SUBSCRIPTION, STATUS_SUBSCRIPTION])
            return
        opts = SubscribeOptions(qos=1)
        client.subscribe([(READINGS_SUBSCRIPTION, opts), (STATUS_SUBSCRIPTION, opts)])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Properties | None
    ) -> None:
        if any(rc.is_failure for rc in rcs):
            log.error("subscription refused: %s", [str(rc) for rc in rcs])
            return
        self.subscribed.set()

    def _on_unsubscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Properties | None
    ) -> None:
        # "No subscription existed" is fine: a session that had none, or none left.
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        with self._gen_lock:
            self._generation += 1
        self.connected = False
        self.metrics.mqtt_connected.set(0)
        if not self._stopping.is_set():
            log.warning("mqtt disconnected: %s; reconnecting", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            # Invalid UTF-8 in a topic: keep the message, it becomes a bad_topic dead letter.
            topic = msg._topic.decode("utf-8", "replace")
        (self._m_status if topic.endswith("/status") else self._m_readings).inc()
        self.received += 1
        self._queue.put(Incoming(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation, datetime.now(UTC)))

    # -- for the worker's threads ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected and subscribed (or, retiring, unsubscribed)."""
        return self.connected and self.subscribed.is_set()

    def queued(self) -> int:
        return self._queue.qsize()

    def next_batch(self) -> list[Incoming]:
        """The next batch of received messages: up to ``batch_max_messages`` / ``batch_max_bytes``,
        or what arrived within ``flush_interval_s`` of the first; empty after 0.1 s of nothing."""
        s = self.settings
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        msgs = [first]
        size = len(first.payload)
        deadline = time.monotonic() + s.flush_interval_s
        while len(msgs) < s.batch_max_messages and size < s.batch_max_bytes:
            try:
                m = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    m = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            msgs.append(m)
            size += len(m.payload)
        return msgs

    def ack(self, msgs: Sequence[Incoming]) -> None:
        """PUBACK the messages that came on the current connection (see the module's docstring)."""
        sent = 0
        with self._gen_lock:
            gen = self._generation
            for m in msgs:
                if m.qos > 0 and m.generation == gen:
                    self._client.ack(m.mid, m.qos)
                    sent += 1
        self.metrics.acks.inc(sent)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        ep = s.mqtt_endpoint()
        self._client.connect_async(
            ep.host, ep.port, keepalive=s.keepalive_s, clean_start=False, properties=self._connect_properties()
        )
        self._client.loop_start()

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect after the queued PUBACKs; the session stays on the broker unless ``end_session``."""
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            self._client.disconnect()
        self._client.loop_stop()


class AckOrder:
    """Batches numbered in arrival order, acknowledged strictly in that order by whichever
    writer commits them (MQTT wants PUBACKs in the order the messages came)."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._cond = threading.Condition()
        self._turn = 0
        self._next = 0

    def number(self) -> int:
        """The next batch's number (called by the one thread that makes batches)."""
        n, self._next = self._next, self._next + 1
        return n

    def in_turn(self, number: int, settle: Callable[[], None]) -> None:
        """Wait for batch ``number``'s turn, run ``settle`` (acks and counts), pass the turn on.

        When the worker stops first, ``settle`` is not run: those messages are not
        acknowledged and the broker re-delivers them.
        """
        with self._cond:
            while self._turn != number:
                if self._stopping.is_set():
                    return
                self._cond.wait(0.1)
            try:
                settle()
            finally:
                self._turn += 1
                self._cond.notify_all()
