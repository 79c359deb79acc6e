"""The ingest worker: MQTT in, PostgreSQL out, acknowledgement only after commit.

Threads:

* paho's network thread receives messages and only queues them (``on_message``);
* the parser thread collects a batch and parses it (:mod:`ingest.prepare`, CPU-bound);
* writer threads (``writers``, each with its own connection) store a batch in one
  transaction (:mod:`ingest.store`) and then acknowledge its messages, batch after batch
  in the parser's order, so PUBACKs leave in the order the messages arrived.

``Client.ack`` from a writer thread only appends a PUBACK to paho's outgoing deque and
wakes the network thread through its socket pair, the same path ``publish`` takes from
user threads. A PUBACK must never reach a *later* connection than the one its message
came on: after a reconnect the broker may have re-used the packet id for a different
message, which the stale PUBACK would then acknowledge before it is stored. So every
message carries the generation of its connection, the network thread bumps the
generation (under ``_gen_lock``) before each reconnect and on each disconnect, and the
writer sends acks only for the current generation, under the same lock. Messages of an
old connection that were committed but not acknowledged are re-delivered by the broker
(persistent session) and counted as duplicates.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from device_profiles.vocabulary import WEIGHT_MAX_DAILY_CHANGE_KG
from device_profiles.wire import READINGS_SUBSCRIPTION, TOPIC_ROOT
from ingest.errors import DataProblemError
from ingest.metrics import HealthServer, Metrics
from ingest.prepare import DeadLetter, Incoming, PreparedBatch, prepare
from ingest.retention import prune_dead_letters
from ingest.settings import IngestSettings
from ingest.store import DeviceCache, DirectCopyGate, StoreResult, setup_connection, store

log = logging.getLogger(__name__)

STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/status"


def _is_transient(err: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    if conn is None or conn.closed or conn.broken:
        return True
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


class IngestService:
    """One ingest worker. ``start()``/``stop()``, or ``run_forever()`` from the CLI."""

    def __init__(self, settings: IngestSettings, *, metrics: Metrics | None = None, retiring: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # Retiring: take over the session, unsubscribe, store what it had queued (see retire()).
        self.retiring = retiring
        self._received = 0
        self._settled = 0
        self._end_session = False
        self.session_present: bool | None = None
        # SimpleQueue: the C implementation, cheapest put() for the network thread.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._gen_lock = threading.Lock()
        self._generation = 0
        self._mqtt_connected = False
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        # One PostgreSQL connection per writer thread, by thread id.
        self._conns: dict[int, psycopg.Connection[Any] | None] = {}
        # Batches are numbered by the parser; writers acknowledge strictly in that order
        # (MQTT wants PUBACKs in the order the messages came), whoever commits first.
        self._ack_cond = threading.Condition()
        self._ack_turn = 0
        self._next_batch = 0
        self._device_cache = DeviceCache()
        self._gate = DirectCopyGate()
        self._client = self._make_client()
        # Parsing (CPU, holds the GIL) overlaps with storing (mostly waiting on PostgreSQL).
        self._prepared: queue.Queue[tuple[int, list[Incoming], PreparedBatch]] = queue.Queue(maxsize=settings.writers)
        self._parser = threading.Thread(target=self._run_parser, name="ingest-parser", daemon=True)
        self._writers = [
            threading.Thread(target=self._run_worker, name=f"ingest-writer-{i}", daemon=True)
            for i in range(settings.writers)
        ]
        self._pruner = threading.Thread(target=self._run_pruner, name="ingest-pruner", daemon=True)
        self._health: HealthServer | None = None
        self._m_readings = self.metrics.messages.labels(topic="readings")
        self._m_status = self.metrics.messages.labels(topic="status")
        # Totals of this worker, for logs and tests.
        self.batches_committed = 0
        self.readings_committed = 0

    # -- MQTT ---------------------------------------------------------------------------

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

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        with self._gen_lock:
            self._generation += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, rc: ReasonCode, props: Properties | None
    ) -> None:
        if rc.is_failure:
            log.warning("mqtt connect refused: %s", rc)
            return
        self._mqtt_connected = True
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
        self._subscribed.set()

    def _on_unsubscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Properties | None
    ) -> None:
        # "No subscription existed" is fine: a session that had none, or none left.
        self._subscribed.set()

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Block until the first subscription is in place (tests publish only after it)."""
        return self._subscribed.wait(timeout_s)

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
        self._mqtt_connected = False
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
        self._received += 1
        self._queue.put(Incoming(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation, datetime.now(UTC)))

    def _ack(self, msgs: Sequence[Incoming]) -> None:
        sent = 0
        with self._gen_lock:
            gen = self._generation
            for m in msgs:
                if m.qos > 0 and m.generation == gen:
                    self._client.ack(m.mid, m.qos)
                    sent += 1
        self.metrics.acks.inc(sent)

    # -- PostgreSQL -----------------------------------------------------------------------

    @property
    def _conn(self) -> psycopg.Connection[Any] | None:
        return self._conns.get(threading.get_ident())

    @_conn.setter
    def _conn(self, conn: psycopg.Connection[Any] | None) -> None:
        self._conns[threading.get_ident()] = conn

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop_db()
            conn = psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                connect_timeout=5,
                application_name="egenmon-ingest",
                # Notice a dead server in seconds, not after the kernel's two hours.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
            try:
                setup_connection(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.metrics.db_connected.set(1)
            log.info("connected to PostgreSQL")
        return self._conn

    def _drop_db(self) -> None:
        conn, self._conn = self._conn, None
        self.metrics.db_connected.set(0)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("closing a broken connection failed", exc_info=True)

    def _commit(self, prepared: PreparedBatch) -> StoreResult | None:
        """Store ``prepared``, retrying while PostgreSQL is unreachable; None when stopping."""
        delay = 0.1
        while True:
            try:
                conn = self._db()
                t0 = time.perf_counter()
                result, devices = store(
                    conn,
                    prepared,
                    max_weight_change_kg=WEIGHT_MAX_DAILY_CHANGE_KG,
                    device_cache=self._device_cache,
                    gate=self._gate,
                )
                self.metrics.commit_seconds.observe(time.perf_counter() - t0)
                self._device_cache.remember(devices)
                self._gate.record(result)
                if result.path is not None:
                    self.metrics.write_path.labels(path=result.path).inc()
                return result
            except psycopg.Error as err:
                if not _is_transient(err, self._conn):
                    self.metrics.db_errors.labels(kind="data").inc()
                    raise DataProblemError(f"{type(err).__name__}: {err}") from err
                self.metrics.db_errors.labels(kind="connection").inc()
                log.warning("storing failed (%s: %s); retrying in %.1f s", type(err).__name__, err, delay)
                self._drop_db()
            if self._stopping.wait(delay):
                return None
            delay = min(delay * 2, self.settings.db_retry_max_s)

    # -- the writer -------------------------------------------------------------------------

    def _collect(self) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        msgs = [first]
        size = len(first.payload)
        deadline = time.monotonic() + self.settings.flush_interval_s
        while len(msgs) < self.settings.batch_max_messages and size < self.settings.batch_max_bytes:
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

    def _connect_db_eagerly(self) -> None:
        # Connect before the first message so /healthz tells the truth from the start.
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._db()
                return
            except psycopg.Error as err:
                log.warning("PostgreSQL not reachable (%s); retrying in %.1f s", err, delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self.settings.db_retry_max_s)

    def _run_parser(self) -> None:
        while not self._stopping.is_set():
            msgs = self._collect()
            if not msgs:
                continue
            prepared = prepare(msgs)
            number, self._next_batch = self._next_batch, self._next_batch + 1
            while not self._stopping.is_set():
                try:
                    self._prepared.put((number, msgs, prepared), timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _run_worker(self) -> None:
        self._connect_db_eagerly()
        while not self._stopping.is_set():
            try:
                number, msgs, prepared = self._prepared.get(timeout=0.1)
            except queue.Empty:
                continue
            self.metrics.queue_depth.set(self._queue.qsize() + len(msgs))
            results: list[StoreResult] | None = None
            try:
                results = self._handle(msgs, prepared)
            except Exception:
                # Never reached by bad input (that becomes dead letters); if it is, the
                # messages stay un-acked and come back after a reconnect.
                log.exception("unexpected error storing %d messages; they stay un-acknowledged", len(msgs))
            finally:
                self._ack_in_order(number, msgs, prepared, results)

    def _ack_in_order(
        self, number: int, msgs: list[Incoming], prepared: PreparedBatch, results: list[StoreResult] | None
    ) -> None:
        with self._ack_cond:
            while self._ack_turn != number:
                if self._stopping.is_set():
                    return  # not acknowledged: the broker re-delivers them
                self._ack_cond.wait(0.1)
            if results is not None:
                self._ack(msgs)
                self._settled += len(msgs)
                self._record(msgs, results)
                self._observe_lag(prepared.sent_at)
            self._ack_turn += 1
            self._ack_cond.notify_all()

    def _handle(self, msgs: list[Incoming], prepared: PreparedBatch) -> list[StoreResult] | None:
        """Store a batch; the results once committed, None if abandoned (stopping)."""
        results: list[StoreResult] = []
        try:
            result = self._commit(prepared)
            if result is None:
                return None
            results.append(result)
        except DataProblemError as err:
            log.warning("batch of %d messages refused (%s); storing them one by one", len(msgs), err)
            for m in msgs:
                try:
                    one = self._commit(prepare([m]))
                except DataProblemError as err_one:
                    dl = DeadLetter(m.topic, None, None, "storage_error", str(err_one)[:2000], m.payload, m.received_at)
                    one = self._commit(PreparedBatch(dead_letters=[dl]))
                if one is None:
                    return None
                results.append(one)
        return results

    def _record(self, msgs: list[Incoming], results: list[StoreResult]) -> None:
        now = datetime.now(UTC)
        m = self.metrics
        m.batch_messages.observe(len(msgs))
        for msg in msgs:
            m.queue_seconds.observe((now - msg.received_at).total_seconds())
        stored = 0
        for r in results:
            m.readings_stored.inc(r.readings_stored)
            stored += r.readings_stored
            for status, n in r.rows_by_status.items():
                m.rows_stored.labels(status=status).inc(n)
            m.duplicates.inc(r.readings_duplicate)
            for reason, n in r.dead_letters.items():
                m.dead_letters.labels(reason=reason).inc(n)
                log.warning("dead letters written", extra={"reason": reason, "count": n})
        self.batches_committed += 1
        self.readings_committed += stored

    def _observe_lag(self, sent_at: Sequence[datetime]) -> None:
        now = datetime.now(UTC)
        for t in sent_at:
            self.metrics.lag_seconds.observe(max(0.0, (now - t).total_seconds()))

    def _run_pruner(self) -> None:
        """Dead-letter retention, every ``dead_letter_prune_interval_s``, on a connection of its own."""
        s = self.settings
        if s.dead_letter_retention_days <= 0 or self.retiring:
            return
        while not self._stopping.wait(s.dead_letter_prune_interval_s):
            try:
                with psycopg.connect(s.database_url, autocommit=True, connect_timeout=5) as conn:
                    deleted = prune_dead_letters(conn, s.dead_letter_retention_days)
                self.metrics.dead_letters_pruned.inc(deleted)
            except psycopg.Error as err:
                log.warning("pruning dead letters failed (%s); next try in %.0f s", err, s.dead_letter_prune_interval_s)

    # -- lifecycle --------------------------------------------------------------------------

    def health(self) -> dict[str, bool]:
        conns = list(self._conns.values())
        return {
            "mqtt": self._mqtt_connected and self._subscribed.is_set(),
            "database": bool(conns) and all(c is not None and not c.closed and not c.broken for c in conns),
        }

    @property
    def metrics_port(self) -> int | None:
        return self._health.port if self._health else None

    def start(self) -> None:
        s = self.settings
        self._health = HealthServer(self.metrics, self.health, s.metrics_host, s.metrics_port)
        self._health.start()
        ep = s.mqtt_endpoint()
        for w in self._writers:
            w.start()
        self._parser.start()
        self._pruner.start()
        self._client.connect_async(
            ep.host, ep.port, keepalive=s.keepalive_s, clean_start=False, properties=self._connect_properties()
        )
        self._client.loop_start()
        log.info("ingest started", extra={"client_id": s.client_id, "mqtt_host": ep.host, "tls": ep.tls})

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._parser.join(timeout_s)
        for w in self._writers:
            w.join(timeout_s)
        if self._pruner.is_alive():
            self._pruner.join(timeout_s)
        # Queued PUBACKs go out before the DISCONNECT; the session (and whatever was not
        # acknowledged) stays on the broker for the next start, unless retire() drained it.
        if self._end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            self._client.disconnect()
        self._client.loop_stop()
        for conn in self._conns.values():
            if conn is not None:
                conn.close()
        self.metrics.db_connected.set(0)
        if self._health:
            self._health.stop()
        log.info("ingest stopped", extra={"batches": self.batches_committed, "readings": self.readings_committed})

    def _threads_alive(self) -> bool:
        return all(w.is_alive() for w in self._writers) and self._parser.is_alive()

    def retire(self, *, idle_s: float = 5.0, timeout_s: float = 600.0) -> bool:
        """Store what the broker still holds for this session, then end the session.

        For a worker taken out of service for good (fewer ``processes``, a host removed):
        the broker keeps assigning it a share of the readings, and drops them when the
        session expires. Stop that worker first; two connections with one client id take
        the session from each other. True when the session was drained and ended; False
        (session kept, nothing lost) when messages were still coming or unsettled after
        ``timeout_s``.
        """
        if not self.retiring:
            raise RuntimeError("retire() needs IngestService(..., retiring=True)")
        self.start()
        deadline = time.monotonic() + timeout_s
        # Quiet since: the last time a message arrived or the connection was not ready;
        # watched here, so the network thread only counts messages.
        seen, quiet_since = -1, time.monotonic()
        try:
            while (now := time.monotonic()) < deadline and self._threads_alive():
                ready = self._mqtt_connected and self._subscribed.is_set()
                if not ready or self._received != seen:
                    seen, quiet_since = self._received, now
                elif now - quiet_since >= idle_s and self._received == self._settled:
                    self._end_session = True
                    return True
                time.sleep(0.1)
            log.error(
                "session not drained; kept",
                extra={"client_id": self.settings.client_id, "received": self._received, "settled": self._settled},
            )
            return False
        finally:
            self.stop()

    def run_forever(self, *, supervisor_pid: int | None = None) -> int:
        """Until SIGTERM/SIGINT (exit code 0), a dead thread or, under a supervisor, its
        death (1)."""
        done = threading.Event()

        def _signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        try:
            while not done.wait(1.0):
                if not self._threads_alive():
                    log.error("a worker thread died")
                    return 1
                if supervisor_pid is not None and os.getppid() != supervisor_pid:
                    log.error("the ingest supervisor is gone; stopping", extra={"supervisor_pid": supervisor_pid})
                    return 1
            return 0
        finally:
            self.stop()
