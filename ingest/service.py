"""The ingest worker: MQTT in, PostgreSQL out, acknowledgement only after commit.

This module wires the parts together; each concern lives in its own module:

* :mod:`ingest.mqtt_shell`: the paho client, its callbacks, connection generations and
  in-order acknowledgement;
* :mod:`ingest.pipeline`: parse, validate and route a batch to rows and dead letters
  (pure, no I/O);
* :mod:`ingest.db_shell`: connections, transactions, retries, isolation of refused rows,
  storing through :mod:`ingest.store`.

Threads:

* paho's network thread receives messages and only queues them;
* the parser thread collects a batch and parses it (:func:`ingest.pipeline.prepare`,
  CPU-bound);
* writer threads (``writers``, each with its own connection) store a batch in one
  transaction and then acknowledge its messages, batch after batch in the parser's order
  (:class:`ingest.mqtt_shell.AckOrder`), so PUBACKs leave in the order the messages arrived.
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
from functools import partial
from types import FrameType

from ingest.db_shell import DatabaseShell
from ingest.metrics import HealthServer, Metrics
from ingest.mqtt_shell import AckOrder, MqttShell
from ingest.pipeline import Incoming, PreparedBatch, prepare
from ingest.settings import IngestSettings
from ingest.store import StoreResult

log = logging.getLogger(__name__)


class IngestService:
    """One ingest worker. ``start()``/``stop()``, or ``run_forever()`` from the CLI."""

    def __init__(self, settings: IngestSettings, *, metrics: Metrics | None = None, retiring: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # Retiring: take over the session, unsubscribe, store what it had queued (see retire()).
        self.retiring = retiring
        self._settled = 0
        self._end_session = False
        self._stopping = threading.Event()
        self.mqtt = MqttShell(settings, self.metrics, self._stopping, retiring=retiring)
        self.db = DatabaseShell(settings, self.metrics, self._stopping)
        self._acks = AckOrder(self._stopping)
        # Parsing (CPU, holds the GIL) overlaps with storing (mostly waiting on PostgreSQL).
        self._prepared: queue.Queue[tuple[int, list[Incoming], PreparedBatch]] = queue.Queue(maxsize=settings.writers)
        self._parser = threading.Thread(target=self._run_parser, name="ingest-parser", daemon=True)
        self._writers = [
            threading.Thread(target=self._run_writer, name=f"ingest-writer-{i}", daemon=True)
            for i in range(settings.writers)
        ]
        self._pruner = threading.Thread(target=self.db.run_pruner, name="ingest-pruner", daemon=True)
        self._health: HealthServer | None = None
        # Totals of this worker, for logs and tests.
        self.batches_committed = 0
        self.readings_committed = 0

    @property
    def session_present(self) -> bool | None:
        """Whether the broker had a session for this client id at the first connect."""
        return self.mqtt.session_present

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Block until the first subscription is in place (tests publish only after it)."""
        return self.mqtt.subscribed.wait(timeout_s)

    # -- the threads ------------------------------------------------------------------------

    def _run_parser(self) -> None:
        while not self._stopping.is_set():
            msgs = self.mqtt.next_batch()
            if not msgs:
                continue
            prepared = prepare(msgs)
            number = self._acks.number()
            while not self._stopping.is_set():
                try:
                    self._prepared.put((number, msgs, prepared), timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _run_writer(self) -> None:
        self.db.connect_eagerly()
        while not self._stopping.is_set():
            try:
                number, msgs, prepared = self._prepared.get(timeout=0.1)
            except queue.Empty:
                continue
            self.metrics.queue_depth.set(self.mqtt.queued() + len(msgs))
            results: list[StoreResult] | None = None
            try:
                results = self.db.store_messages(msgs, prepared)
            except Exception:
                # Never reached by bad input (that becomes dead letters); if it is, the
                # messages stay un-acked and come back after a reconnect.
                log.exception("unexpected error storing %d messages; they stay un-acknowledged", len(msgs))
            finally:
                self._acks.in_turn(number, partial(self._settle, msgs, prepared, results))

    def _settle(self, msgs: list[Incoming], prepared: PreparedBatch, results: list[StoreResult] | None) -> None:
        """In the batch's turn: acknowledge what was committed and count it."""
        if results is None:
            return
        self.mqtt.ack(msgs)
        self._settled += len(msgs)
        self._record(msgs, results)
        self._observe_lag(prepared.sent_at)

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

    # -- lifecycle --------------------------------------------------------------------------

    def health(self) -> dict[str, bool]:
        return {"mqtt": self.mqtt.ready, "database": self.db.healthy()}

    @property
    def metrics_port(self) -> int | None:
        return self._health.port if self._health else None

    def start(self) -> None:
        s = self.settings
        self._health = HealthServer(self.metrics, self.health, s.metrics_host, s.metrics_port)
        self._health.start()
        for w in self._writers:
            w.start()
        self._parser.start()
        if not self.retiring:
            self._pruner.start()
        self.mqtt.start()
        ep = s.mqtt_endpoint()
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
        self.mqtt.stop(end_session=self._end_session)
        self.db.close()
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
                received = self.mqtt.received
                if not self.mqtt.ready or received != seen:
                    seen, quiet_since = received, now
                elif now - quiet_since >= idle_s and received == self._settled:
                    self._end_session = True
                    return True
                time.sleep(0.1)
            log.error(
                "session not drained; kept",
                extra={"client_id": self.settings.client_id, "received": self.mqtt.received, "settled": self._settled},
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
