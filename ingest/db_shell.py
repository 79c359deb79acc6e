"""The PostgreSQL side of a worker: connections, transactions, retries, isolation of bad rows.

:class:`DatabaseShell` holds one connection per writer thread (each writer stores its
batches on its own connection) and stores a prepared batch with :func:`ingest.store.store`
in one transaction:

* while PostgreSQL is unreachable (a connection fault) it retries with backoff, up to
  ``db_retry_max_s`` between attempts, until it succeeds or the worker stops;
* when PostgreSQL refuses the batch for its content, the batch's messages are stored one
  by one and the one refused again becomes a ``storage_error`` dead letter
  (:meth:`DatabaseShell.store_messages`).

It also prunes old dead letters on a connection of its own. Nothing here parses or
routes: that is :mod:`ingest.pipeline`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from device_profiles.vocabulary import WEIGHT_MAX_DAILY_CHANGE_KG
from ingest.errors import DataProblemError
from ingest.metrics import Metrics
from ingest.pipeline import DeadLetter, Incoming, PreparedBatch, prepare
from ingest.retention import prune_dead_letters
from ingest.settings import IngestSettings
from ingest.store import DeviceCache, DirectCopyGate, StoreResult, setup_connection, store

log = logging.getLogger(__name__)


def is_transient(err: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """Whether ``err`` is a connection fault (retried), not PostgreSQL refusing the data."""
    if conn is None or conn.closed or conn.broken:
        return True
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


class DatabaseShell:
    """Connections (one per calling thread), stores with retry, and dead-letter pruning."""

    def __init__(self, settings: IngestSettings, metrics: Metrics, stopping: threading.Event) -> None:
        self.settings = settings
        self.metrics = metrics
        self._stopping = stopping
        # One PostgreSQL connection per writer thread, by thread id.
        self._conns: dict[int, psycopg.Connection[Any] | None] = {}
        # Shared by the writer threads (plain dict and int updates under the GIL).
        self._device_cache = DeviceCache()
        self._gate = DirectCopyGate()

    # -- connections --------------------------------------------------------------------------

    @property
    def _conn(self) -> psycopg.Connection[Any] | None:
        return self._conns.get(threading.get_ident())

    @_conn.setter
    def _conn(self, conn: psycopg.Connection[Any] | None) -> None:
        self._conns[threading.get_ident()] = conn

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's connection, made (and set up) when it has none or a broken one."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
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

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.metrics.db_connected.set(0)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("closing a broken connection failed", exc_info=True)

    def connect_eagerly(self) -> None:
        """Connect this thread before the first message, so /healthz tells the truth from the start."""
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self.connection()
                return
            except psycopg.Error as err:
                log.warning("PostgreSQL not reachable (%s); retrying in %.1f s", err, delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self.settings.db_retry_max_s)

    def healthy(self) -> bool:
        conns = list(self._conns.values())
        return bool(conns) and all(c is not None and not c.closed and not c.broken for c in conns)

    def close(self) -> None:
        for conn in self._conns.values():
            if conn is not None:
                conn.close()
        self.metrics.db_connected.set(0)

    # -- storing --------------------------------------------------------------------------------

    def commit(self, prepared: PreparedBatch) -> StoreResult | None:
        """Store ``prepared`` in one transaction, retrying while PostgreSQL is unreachable.

        None when the worker is stopping; DataProblemError when PostgreSQL refuses the data.
        """
        delay = 0.1
        while True:
            try:
                conn = self.connection()
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
                if not is_transient(err, self._conn):
                    self.metrics.db_errors.labels(kind="data").inc()
                    raise DataProblemError(f"{type(err).__name__}: {err}") from err
                self.metrics.db_errors.labels(kind="connection").inc()
                log.warning("storing failed (%s: %s); retrying in %.1f s", type(err).__name__, err, delay)
                self._drop()
            if self._stopping.wait(delay):
                return None
            delay = min(delay * 2, self.settings.db_retry_max_s)

    def store_messages(self, msgs: Sequence[Incoming], prepared: PreparedBatch) -> list[StoreResult] | None:
        """Store a batch; the results once committed, None if abandoned (stopping).

        A batch PostgreSQL refuses for its content is stored message by message (each
        parsed again on its own); a message refused again becomes a
        ``storage_error`` dead letter, and the rest are stored.
        """
        results: list[StoreResult] = []
        try:
            result = self.commit(prepared)
            if result is None:
                return None
            results.append(result)
        except DataProblemError as err:
            log.warning("batch of %d messages refused (%s); storing them one by one", len(msgs), err)
            for m in msgs:
                try:
                    one = self.commit(prepare([m]))
                except DataProblemError as err_one:
                    dl = DeadLetter(m.topic, None, None, "storage_error", str(err_one)[:2000], m.payload, m.received_at)
                    one = self.commit(PreparedBatch(dead_letters=[dl]))
                if one is None:
                    return None
                results.append(one)
        return results

    # -- retention ------------------------------------------------------------------------------

    def run_pruner(self) -> None:
        """Dead-letter retention, every ``dead_letter_prune_interval_s``, on a connection of its own."""
        s = self.settings
        if s.dead_letter_retention_days <= 0:
            return
        while not self._stopping.wait(s.dead_letter_prune_interval_s):
            try:
                with psycopg.connect(s.database_url, autocommit=True, connect_timeout=5) as conn:
                    deleted = prune_dead_letters(conn, s.dead_letter_retention_days)
                self.metrics.dead_letters_pruned.inc(deleted)
            except psycopg.Error as err:
                log.warning("pruning dead letters failed (%s); next try in %.0f s", err, s.dead_letter_prune_interval_s)
