"""The on-disk outbox: every reading is here before anything else happens to it.

SQLite in WAL mode with ``synchronous=FULL``: a committed reading survives a power cut.
A reading leaves the outbox only when the broker has acknowledged (PUBACK) the message
holding it. Readings are grouped into batches with a monotonic, persisted ``seq``; a
batch keeps its seq and its readings until acknowledged, so after a restart it is sent
again identically (ingest dedupes by reading id).

The same database holds the small per-device state (last glucose record sequence,
paired devices) and the ids of readings already taken, so a device that resends old
records does not produce a second copy.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_profiles.wire import Reading

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    batch_seq INTEGER
);
CREATE INDEX IF NOT EXISTS reading_batch ON reading (batch_seq);
CREATE TABLE IF NOT EXISTS taken (
    reading_id TEXT PRIMARY KEY,
    taken_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device (
    address TEXT PRIMARY KEY,
    profile_id TEXT,
    paired INTEGER NOT NULL DEFAULT 0,
    last_sequence INTEGER,
    last_seen_at TEXT,
    battery_pct INTEGER
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    characteristic TEXT,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    received_at TEXT NOT NULL
);
"""

# Ids of taken readings are kept this long to recognise a device's resent records.
TAKEN_RETENTION = timedelta(days=60)


@dataclass(frozen=True)
class Batch:
    seq: int
    readings: list[Reading]


@dataclass(frozen=True)
class AddResult:
    added: int
    duplicates: int


@dataclass(frozen=True)
class DeviceRecord:
    address: str
    profile_id: str | None
    paired: bool
    last_sequence: int | None
    last_seen_at: datetime | None
    battery_pct: int | None


class Outbox:
    """Thread-safe (one lock): the asyncio loop adds, paho's thread acknowledges.

    ``capacity`` is enforced where data can still wait elsewhere: when the outbox is full
    the gateway stops connecting to devices (their memory holds the readings) and raises
    the alarm in its status. A value already received is never refused: a device that
    pushed it (indications) will not send it again.
    """

    def __init__(self, path: Path, *, capacity: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)
        self._depth = self._count()
        # Called with the readings newly stored by each ``add`` (not the duplicates).
        self.on_added: Callable[[list[Reading]], None] | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM reading").fetchone()
        return int(row[0])

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def full(self) -> bool:
        return self._depth >= self.capacity

    def add(
        self,
        readings: Sequence[Reading],
        *,
        address: str | None = None,
        last_sequence: int | None = None,
        now: datetime | None = None,
    ) -> AddResult:
        """Store readings durably (one transaction, fsynced) before they go anywhere.

        ``last_sequence`` (glucose record number) is stored in the same transaction, so the
        next RACP request never skips a record that did not reach the disk.
        """
        now = now or datetime.now(UTC)
        added = dupes = 0
        fresh: list[Reading] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for r in readings:
                    rid = str(r.reading_id)
                    if self._db.execute("SELECT 1 FROM taken WHERE reading_id = ?", (rid,)).fetchone():
                        dupes += 1
                        continue
                    self._db.execute(
                        "INSERT INTO reading (reading_id, body) VALUES (?, ?)",
                        (rid, r.model_dump_json(exclude_none=True)),
                    )
                    self._db.execute("INSERT INTO taken (reading_id, taken_at) VALUES (?, ?)", (rid, now.isoformat()))
                    added += 1
                    fresh.append(r)
                if address is not None and last_sequence is not None:
                    self._db.execute(
                        "INSERT INTO device (address, last_sequence) VALUES (?, ?) "
                        "ON CONFLICT (address) DO UPDATE SET last_sequence = "
                        "max(coalesce(device.last_sequence, -1), excluded.last_sequence)",
                        (address, last_sequence),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += added
        # After the commit: listeners (the patient outputs) only ever hear of stored readings.
        if fresh and self.on_added is not None:
            self.on_added(fresh)
        return AddResult(added, dupes)

    def reject(self, address: str, characteristic: str | None, reason: str, raw: bytes, at: datetime) -> None:
        """Keep undecodable bytes (never silently dropped) for later analysis."""
        with self._lock:
            self._db.execute(
                "INSERT INTO rejected (address, characteristic, reason, raw, received_at) VALUES (?, ?, ?, ?, ?)",
                (address, characteristic, reason[:500], raw, at.isoformat()),
            )

    def rejected_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM rejected").fetchone()[0])

    # -- batches ---------------------------------------------------------------------

    def unacked_batches(self) -> list[Batch]:
        """Batches assigned earlier but not yet acknowledged (resend after a restart)."""
        with self._lock:
            seqs = [
                int(s)
                for (s,) in self._db.execute(
                    "SELECT DISTINCT batch_seq FROM reading WHERE batch_seq IS NOT NULL ORDER BY batch_seq"
                )
            ]
            return [self._load_batch(s) for s in seqs]

    def unacked_seqs(self) -> list[int]:
        with self._lock:
            return [
                int(s)
                for (s,) in self._db.execute(
                    "SELECT DISTINCT batch_seq FROM reading WHERE batch_seq IS NOT NULL ORDER BY batch_seq"
                )
            ]

    def load_batch(self, seq: int) -> Batch:
        with self._lock:
            return self._load_batch(seq)

    def _load_batch(self, seq: int) -> Batch:
        rows = self._db.execute("SELECT body FROM reading WHERE batch_seq = ? ORDER BY id", (seq,)).fetchall()
        return Batch(seq, [Reading.model_validate_json(b) for (b,) in rows])

    def next_batch(self, max_readings: int) -> Batch | None:
        """Assign the oldest unbatched readings to a new batch with the next seq."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, body FROM reading WHERE batch_seq IS NULL ORDER BY id LIMIT ?", (max_readings,)
                ).fetchall()
                if not rows:
                    self._db.execute("COMMIT")
                    return None
                seq_row = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                seq = int(seq_row[0]) if seq_row else 0
                self._db.executemany("UPDATE reading SET batch_seq = ? WHERE id = ?", [(seq, i) for i, _ in rows])
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(seq + 1),),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Batch(seq, [Reading.model_validate_json(b) for _, b in rows])

    def acknowledge(self, seq: int) -> int:
        """The broker has the batch: its readings may go."""
        with self._lock:
            cur = self._db.execute("DELETE FROM reading WHERE batch_seq = ?", (seq,))
            self._depth -= cur.rowcount
            return cur.rowcount

    def prune_taken(self, now: datetime | None = None) -> None:
        cutoff = (now or datetime.now(UTC)) - TAKEN_RETENTION
        with self._lock:
            self._db.execute("DELETE FROM taken WHERE taken_at < ?", (cutoff.isoformat(),))

    # -- devices ---------------------------------------------------------------------

    def device(self, address: str) -> DeviceRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT address, profile_id, paired, last_sequence, last_seen_at, battery_pct FROM device "
                "WHERE address = ?",
                (address,),
            ).fetchone()
        return _device(row) if row else None

    def devices(self) -> list[DeviceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address, profile_id, paired, last_sequence, last_seen_at, battery_pct FROM device "
                "ORDER BY address"
            ).fetchall()
        return [_device(r) for r in rows]

    def set_paired(self, address: str, profile_id: str | None, paired: bool) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO device (address, profile_id, paired) VALUES (?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET paired = excluded.paired, "
                "profile_id = coalesce(excluded.profile_id, device.profile_id)",
                (address, profile_id, int(paired)),
            )

    def seen(self, address: str, profile_id: str, at: datetime, battery_pct: int | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO device (address, profile_id, last_seen_at, battery_pct) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET profile_id = excluded.profile_id, "
                "last_seen_at = excluded.last_seen_at, "
                "battery_pct = coalesce(excluded.battery_pct, device.battery_pct)",
                (address, profile_id, at.isoformat(), battery_pct),
            )

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def meta_prefixed(self, prefix: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, length(?)) = ?", (prefix, prefix)
            ).fetchall()
        return {str(k)[len(prefix) :]: str(v) for k, v in rows}


def _device(row: tuple[object, ...]) -> DeviceRecord:
    address, profile_id, paired, last_seq, seen_at, battery = row
    return DeviceRecord(
        address=str(address),
        profile_id=None if profile_id is None else str(profile_id),
        paired=bool(paired),
        last_sequence=None if last_seq is None else int(str(last_seq)),
        last_seen_at=None if seen_at is None else datetime.fromisoformat(str(seen_at)),
        battery_pct=None if battery is None else int(str(battery)),
    )


def readings_json(readings: Iterable[Reading]) -> list[str]:
    return [json.dumps(r.model_dump(mode="json", exclude_none=True)) for r in readings]
