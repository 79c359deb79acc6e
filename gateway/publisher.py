"""MQTT publishing with paho-mqtt 2.x (MQTT 5): batches out, PUBACKs back into the outbox.

paho runs its network loop in its own thread; acknowledgements (``on_publish`` with the
message id) delete the batch's readings from the outbox under the outbox's lock. A batch
published while the connection drops stays in paho's session and in the outbox; after a
process restart the outbox resends it with the same seq.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_profiles.messages import (
    OFFLINE_PAYLOAD,
    FeedbackAck,
    FeedbackMessage,
    GatewayConfig,
    feedback_ack_topic,
    feedback_topic,
)
from device_profiles.wire import batch_of, config_topic, readings_topic, status_topic
from gateway.errors import GatewayError
from gateway.outbox import Batch, Outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerConfig:
    url: str
    gateway_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30


class Publisher:
    def __init__(
        self,
        broker: BrokerConfig,
        outbox: Outbox,
        *,
        on_config: Callable[[GatewayConfig], None] | None = None,
        on_ack: Callable[[], None] | None = None,
        on_feedback: Callable[[FeedbackMessage], None] | None = None,
    ) -> None:
        self.broker = broker
        self.outbox = outbox
        self._on_config = on_config
        self._on_ack = on_ack
        self._on_feedback = on_feedback
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> batch seq
        self._sent_seqs: set[int] = set()
        self._early_acks: dict[int, bool] = {}
        # mids of QoS 1 messages that are not reading batches (status, feedback acks): their
        # PUBACKs must never be taken for a batch's when paho reuses the mid later.
        self._other_mids: set[int] = set()
        self.connected = threading.Event()
        self.published_batches = 0
        parts = urlsplit(broker.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise GatewayError(f"unsupported broker URL scheme {parts.scheme!r}")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # The gateway id itself: deploy's broker replaces a gateway's client id with its
            # username (= gateway id, use_username_as_clientid), so both sides agree.
            client_id=broker.gateway_id,
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(0)  # our own window limits what is outstanding
        client.max_queued_messages_set(0)
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if parts.scheme == "mqtts" or broker.ca_file:
            # CA verification always on: a gateway talks to the region's broker only.
            client.tls_set(
                ca_certs=broker.ca_file,
                certfile=broker.cert_file,
                keyfile=broker.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        will_props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        client.will_set(status_topic(broker.gateway_id), OFFLINE_PAYLOAD, qos=1, retain=True, properties=will_props)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client = client

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Persistent session: the broker keeps our subscription and in-flight QoS 1 state
        # across reconnects (a day is far longer than any home network outage we ride out
        # in memory; the outbox covers the rest).
        props.SessionExpiryInterval = 86_400
        self._client.connect_async(
            self._host, self._port, keepalive=self.broker.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        if self.connected.is_set():
            # A clean stop says "offline" itself (the will is only sent on an unclean loss).
            info = self._client.publish(status_topic(self.broker.gateway_id), OFFLINE_PAYLOAD, qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    # -- paho callbacks (paho's thread) ------------------------------------------------

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("mqtt_connect_refused reason=%s", reason)
            return
        logger.info("mqtt_connected session_present=%s", flags.session_present)
        client.subscribe([(config_topic(self.broker.gateway_id), 1), (feedback_topic(self.broker.gateway_id), 1)])
        # In-flight batches are not forgotten here even when the broker lost our session:
        # paho retransmits every unacknowledged QoS 1 message on reconnect, and their
        # PUBACKs must still map to the right batch (a stale mapping could ack another).
        self.connected.set()

    def _disconnected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        logger.warning("mqtt_disconnected reason=%s", reason)

    def _published(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            if mid in self._other_mids:
                self._other_mids.discard(mid)
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                # The PUBACK overtook publish() returning the mid (paho's thread is fast).
                self._early_acks[mid] = not reason.is_failure
                return
        self._acked(seq, ok=not reason.is_failure, reason=reason)

    def _acked(self, seq: int, *, ok: bool, reason: object) -> None:
        if not ok:
            # Refused (e.g. ACL with MQTT 5 reason codes): keep the readings, try again later.
            logger.error("mqtt_publish_refused seq=%d reason=%s", seq, reason)
            with self._lock:
                self._sent_seqs.discard(seq)
            return
        removed = self.outbox.acknowledge(seq)
        logger.debug("batch_acked seq=%d readings=%d", seq, removed)
        with self._lock:
            self._sent_seqs.discard(seq)
        if self._on_ack:
            self._on_ack()

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == feedback_topic(self.broker.gateway_id):
            self._feedback(msg.payload)
            return
        if msg.topic != config_topic(self.broker.gateway_id) or not msg.payload:
            return
        try:
            cfg = GatewayConfig.model_validate_json(msg.payload)
        except ValueError as err:
            logger.warning("config_invalid error=%s", str(err)[:200])
            return
        logger.info("config_received allowed_devices=%d", len(cfg.allowed_devices))
        if self._on_config:
            self._on_config(cfg)

    def _feedback(self, payload: bytes | bytearray) -> None:
        try:
            fb = FeedbackMessage.model_validate_json(payload)
        except ValueError as err:
            logger.warning("feedback_invalid error=%s", str(err)[:200])
            return
        if self._on_feedback:
            self._on_feedback(fb)

    # -- sending ---------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def publish_batch(self, batch: Batch) -> None:
        payload = batch_of(self.broker.gateway_id, batch.seq, datetime.now(UTC), batch.readings).to_json_bytes()
        with self._lock:
            if batch.seq in self._sent_seqs:
                return
            self._sent_seqs.add(batch.seq)
        # Never hold our lock across paho calls: paho calls on_publish holding its own.
        info = self._client.publish(readings_topic(self.broker.gateway_id), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            logger.warning("mqtt_publish_failed seq=%d rc=%s", batch.seq, info.rc)
            with self._lock:
                self._sent_seqs.discard(batch.seq)
            return
        with self._lock:
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._inflight[info.mid] = batch.seq
        if early is not None:
            self._acked(batch.seq, ok=early, reason="early")
        self.published_batches += 1

    def is_sent(self, seq: int) -> bool:
        with self._lock:
            return seq in self._sent_seqs

    def _publish_other(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """A QoS 1 message that is not a reading batch: its PUBACK acknowledges no batch."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return
        with self._lock:
            # The PUBACK may already have come (recorded as an early ack): forget it.
            if self._early_acks.pop(info.mid, None) is None:
                self._other_mids.add(info.mid)

    def publish_status(self, payload: bytes) -> None:
        if self.connected.is_set():
            self._publish_other(status_topic(self.broker.gateway_id), payload, retain=True)

    def publish_feedback_ack(self, ack: FeedbackAck) -> None:
        """Tell the platform a message reached the patient's outputs (or expired unshown)."""
        self._publish_other(feedback_ack_topic(self.broker.gateway_id), ack.model_dump_json(by_alias=True).encode())
