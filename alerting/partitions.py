"""Partitioned alerting workers: each owns a stable share of the patients.

Patients fall into ``partitions`` partitions by a hash of their id (``partition_of``:
the same in every process and release). A worker owns a partition while it holds
PostgreSQL's session advisory lock (``LOCK_SPACE``, partition) on a connection of its
own, so ownership needs no table and no clock: a worker that dies, or whose connection
breaks, loses its locks when PostgreSQL closes the session, and the others take the
partitions over at their next check. Each worker also holds one lock in
``MEMBER_SPACE`` (keyed by its backend pid) while it runs; counting those in
``pg_locks`` tells every worker how many share the partitions, and each keeps a fair
share, ceil(partitions / workers): one that holds more releases the surplus (the
highest partitions), one that holds fewer claims free ones. Two workers started
together therefore settle within two checks.

An evaluation holds the partitions of its patients (``use``), and a release waits for
those evaluations to end, so a partition is never evaluated by its old and its new
owner at once (within one PostgreSQL session's life: a broken lock connection cannot
stop an evaluation already under way; it ends with that chunk).

``partitions = 1`` (the default) takes no lock at all: one worker owns everyone.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# Advisory lock key spaces (the first of the two int4 keys): "EGA" and one more.
LOCK_SPACE = 0x454741
MEMBER_SPACE = LOCK_SPACE + 1

_LIVE_SQL = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = %s AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def partition_of(patient_id: str, partitions: int) -> int:
    """The patient's partition: a hash of the id's 16 bytes, stable across processes."""
    if partitions <= 1:
        return 0
    digest = hashlib.blake2b(uuid.UUID(patient_id).bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class PartitionOwner:
    """The partitions this worker owns, kept by ``check`` on a connection of its own."""

    def __init__(self, database_url: str, partitions: int) -> None:
        self.database_url = database_url
        self.partitions = partitions
        self._cond = threading.Condition()
        self._owned: set[int] = set(range(partitions)) if partitions == 1 else set()
        self._in_use: Counter[int] = Counter()
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def owned(self) -> frozenset[int]:
        with self._cond:
            return frozenset(self._owned)

    @property
    def leads(self) -> bool:
        """Whether this worker runs the housekeeping (snoozes, escalations): partition 0's owner."""
        with self._cond:
            return 0 in self._owned

    def mine(self, ids: Sequence[str]) -> list[str]:
        """The patients of ``ids`` in partitions this worker owns, in the order given."""
        if self.partitions == 1:
            return list(ids)
        owned = self.owned
        return [p for p in ids if partition_of(p, self.partitions) in owned]

    @contextmanager
    def use(self, ids: Sequence[str]) -> Iterator[list[str]]:
        """Hold the partitions of the owned patients among ``ids`` while evaluating them."""
        if self.partitions == 1:
            yield list(ids)
            return
        with self._cond:
            parts = [partition_of(p, self.partitions) for p in ids]
            mine = [p for p, k in zip(ids, parts, strict=True) if k in self._owned]
            held = [k for k in parts if k in self._owned]
            self._in_use.update(held)
        try:
            yield mine
        finally:
            with self._cond:
                self._in_use.subtract(held)
                self._cond.notify_all()

    def check(self) -> tuple[set[int], set[int]]:
        """Keep a fair share of the partitions: (gained, lost). Raises psycopg.Error when
        the lock connection fails (every partition is then given up)."""
        if self.partitions == 1:
            return set(), set()
        try:
            return self._check()
        except psycopg.Error:
            self._drop()
            raise

    def _check(self) -> tuple[set[int], set[int]]:
        if self._conn is None or self._conn.closed:
            self._drop()
            self._conn = psycopg.connect(self.database_url, autocommit=True, application_name="egenmon-alerting")
            self._conn.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", (MEMBER_SPACE,))
        conn = self._conn
        row = conn.execute(_LIVE_SQL, (MEMBER_SPACE,)).fetchone()
        live = max(1, int(row[0]) if row else 1)
        share = math.ceil(self.partitions / live)
        gained: set[int] = set()
        lost: set[int] = set()
        owned = sorted(self.owned)
        for k in owned[share:]:  # the surplus, highest first to go
            with self._cond:
                self._owned.discard(k)  # no new evaluation takes it
                while self._in_use[k] > 0:
                    self._cond.wait()
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, k))
            lost.add(k)
        for k in range(self.partitions):
            if len(owned) + len(gained) - len(lost) >= share:
                break
            if k in self._owned:
                continue
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, k)).fetchone()
            if row and row[0]:
                with self._cond:
                    self._owned.add(k)
                gained.add(k)
        if gained or lost:
            log.info(
                "partitions owned=%s gained=%s lost=%s workers=%d of %d partitions",
                ",".join(map(str, sorted(self.owned))) or "-",
                ",".join(map(str, sorted(gained))) or "-",
                ",".join(map(str, sorted(lost))) or "-",
                live,
                self.partitions,
            )
        return gained, lost

    def _drop(self) -> None:
        """Give up every partition (the locks went with the session, or go now)."""
        with self._cond:
            self._owned.clear()
            while sum(self._in_use.values()) > 0:
                self._cond.wait()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self.partitions > 1:
            self._drop()
