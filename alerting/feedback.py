"""Messages to patients: from the ``patient_message`` outbox to each gateway over MQTT.

The lifecycle queues a message in the same transaction as the finding that caused it; this
publisher sends every unsent, unexpired message to ``egenmon/v1/gw/{gateway}/feedback``
(QoS 1), marks it sent only after the broker's PUBACK, and records the gateway's
acknowledgements (``.../feedback/ack``: delivered, seen, expired) on the message and on
the alert's timeline. The topic's gateway id is authoritative: an acknowledgement counts
only for a message sent to that gateway.

The same connection keeps each gateway's retained config current (``gateway_config``).
The session is persistent (``mqtt_session_expiry_s``): acknowledgements sent while
alerting is away wait on the broker, and a CONNACK without the session tells us the
broker may have lost its retained messages too, so every config is published again.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alerting import metrics
from alerting.errors import AlertingError
from alerting.gateway_config import ConfigSync
from alerting.settings import AlertingSettings
from device_profiles.messages import FeedbackAck, FeedbackMessage, feedback_topic

log = logging.getLogger(__name__)

ACK_SUBSCRIPTION = "egenmon/v1/gw/+/feedback/ack"
ACK_EVENTS = {"delivered": "message_delivered", "seen": "message_seen", "expired": "message_expired"}
PUBACK_TIMEOUT_S = 10.0


def _client(settings: AlertingSettings) -> tuple[mqtt.Client, str, int]:
    url = settings.mqtt_url or ""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise AlertingError(f"unsupported MQTT URL {url!r} (mqtt:// or mqtts://)")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id, protocol=mqtt.MQTTv5)
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    if parts.scheme == "mqtts":
        client.tls_set(
            ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return client, parts.hostname or "localhost", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def gateway_of(topic: str) -> str | None:
    """The gateway id of an ``egenmon/v1/gw/{id}/feedback/ack`` topic."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[:3] == ["egenmon", "v1", "gw"] and parts[4:] == ["feedback", "ack"]:
        return parts[3]
    return None


def record_ack(conn: psycopg.Connection[Any], gateway_id: str, payload: bytes) -> bool:
    """Store one acknowledgement; False (logged) for a malformed one or an unknown message."""
    try:
        ack = FeedbackAck.model_validate_json(payload)
    except ValueError as err:
        log.warning("feedback ack invalid gateway=%s error=%s", gateway_id, str(err)[:200])
        metrics.ERRORS.labels("feedback_ack").inc()
        return False
    column = {"delivered": "delivered_at", "seen": "seen_at", "expired": "delivered_at"}[ack.state]
    with conn.transaction():
        row = conn.execute(
            f"UPDATE patient_message SET {column} = coalesce({column}, %s) "
            "WHERE id::text = %s AND gateway_id = %s RETURNING alert_id",
            (ack.at, ack.id, gateway_id),
        ).fetchone()
        if row is None:
            log.warning("feedback ack for an unknown message gateway=%s id=%s", gateway_id, ack.id)
            return False
        if row[0] is not None:
            conn.execute(
                "INSERT INTO alert_event (alert_id, event, at, details) VALUES (%s, %s, %s, %s)",
                (row[0], ACK_EVENTS[ack.state], ack.at, json.dumps({"message": ack.id, "gateway": gateway_id})),
            )
    metrics.PATIENT_MESSAGES.labels(ack.state).inc()
    return True


class FeedbackPublisher:
    """Sends queued messages and records acknowledgements; runs in its own thread."""

    def __init__(self, settings: AlertingSettings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._client, self._host, self._port = _client(settings)
        self._client.on_connect = self._connected
        self._client.on_message = self._message
        self._acks: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected_event = threading.Event()
        self.configs = ConfigSync(settings.config_poll_s, settings.config_reconcile_s)

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("feedback publisher: broker refused the connection (%s)", reason)
            return
        if not flags.session_present:
            log.info("broker has no session of ours: republishing every gateway config")
            self.configs.request_republish_all()
        client.subscribe(ACK_SUBSCRIPTION, qos=1)
        self._connected_event.set()
        self.wake.set()

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        gateway = gateway_of(msg.topic)
        if gateway is not None:
            with self._lock:
                self._acks.append((gateway, bytes(msg.payload)))
            self.wake.set()

    def send_pending(self, conn: psycopg.Connection[Any], now: datetime | None = None) -> int:
        """Publish every unsent, unexpired message with a gateway; returns how many the broker took."""
        at = now or datetime.now(UTC)
        sent = 0
        with conn.transaction():
            rows = conn.execute(
                "SELECT id::text, gateway_id, alert_id, level, kind, message_sv, created_at, expires_at "
                "FROM patient_message WHERE sent_at IS NULL AND gateway_id IS NOT NULL AND expires_at > %s "
                "ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED",
                (at,),
            ).fetchall()
            for mid, gateway, alert_id, level, kind, text, created, expires in rows:
                msg = FeedbackMessage(
                    id=mid, level=level, message_sv=text, kind=kind, created_at=created, expires_at=expires
                )
                info = self._client.publish(feedback_topic(gateway), msg.model_dump_json(by_alias=True).encode(), qos=1)
                info.wait_for_publish(timeout=PUBACK_TIMEOUT_S)
                if not info.is_published():
                    break  # the broker is away: the rest wait for the next round
                conn.execute("UPDATE patient_message SET sent_at = %s WHERE id::text = %s", (at, mid))
                if alert_id is not None:
                    conn.execute(
                        "INSERT INTO alert_event (alert_id, event, at, details) VALUES (%s, 'message_sent', %s, %s)",
                        (alert_id, at, json.dumps({"message": mid, "level": level, "gateway": gateway})),
                    )
                sent += 1
        if sent:
            metrics.PATIENT_MESSAGES.labels("sent").inc(sent)
            log.info("patient messages sent count=%d", sent)
        return sent

    def publish_retained(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Publish retained at QoS 1, then wait for the PUBACKs; True per message the broker took."""
        infos = [self._client.publish(topic, payload, qos=1, retain=True) for topic, payload in items]
        oks: list[bool] = []
        for info in infos:
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=PUBACK_TIMEOUT_S)
            oks.append(info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published())
        return oks

    def record_acks(self, conn: psycopg.Connection[Any]) -> int:
        with self._lock:
            acks, self._acks = self._acks, []
        return sum(record_ack(conn, gateway, payload) for gateway, payload in acks)

    def run(self) -> None:
        """Connect, then send and record until stopped; database errors are logged, never fatal."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        self._client.connect_async(self._host, self._port, keepalive=30, clean_start=False, properties=props)
        self._client.loop_start()
        try:
            with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
                while not self.stop_event.is_set():
                    self.wake.wait(min(self.settings.feedback_poll_s, self.settings.config_poll_s))
                    self.wake.clear()
                    try:
                        self.record_acks(conn)
                        if self._connected_event.is_set() and self._client.is_connected():
                            self.send_pending(conn)
                            if self.configs.due():
                                self.configs.round(conn, self.publish_retained)
                    except psycopg.Error as err:
                        metrics.ERRORS.labels("feedback").inc()
                        log.exception("feedback round failed: %s", err)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
