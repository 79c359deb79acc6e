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

import hashlib
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
    battery_pct INTEGER,
    user_index INTEGER
);
CREATE TABLE IF NOT EXISTS content_seen (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_key TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS content_seen_key ON content_seen (content_key, id);
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
# Readings without a device time stamp or record number (their reading id comes from the
# reception time, so a resend gets a new one) are recognised by their bytes instead, when
# the same bytes came from the same device within this long (see ContentKey).
DEFAULT_RESEND_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ContentKey:
    """How a reading without time stamp or sequence is recognised when a device resends it.

    ``key`` hashes the device identity, kind and raw GATT bytes; ``occurrence`` is the
    how-manieth value with that key in this connection (1, 2, ...). A value is taken for a
    resend when it comes in the opening run of its connection (``may_be_resend``: every
    value before it in the connection was a resend) and at least ``occurrence`` values
    with its key were stored within the resend window. That covers both ways devices
    resend: a cuff that keeps its memory sends all of it again, oldest first, before any
    new value; a cuff that forgets confirmed values can resend only the one whose
    confirmation it missed (ATT allows one outstanding indication), as the first value of
    the next connection. Two genuinely equal readings in one connection are both kept;
    a new reading that equals one stored within the window and comes first in its
    connection cannot be told from a resend by its bytes, and is counted as a duplicate
    (logged). The window slides: a recognised resend refreshes the copy it matched.
    """

    key: str
    occurrence: int
    may_be_resend: bool = True


def content_key(device_identity: str, kind: str, raw: bytes) -> str:
    return hashlib.sha256(f"{device_identity}|{kind}|{raw.hex()}".encode()).hexdigest()


@dataclass(frozen=True)
class Batch:
    seq: int
    readings: list[Reading]


@dataclass(frozen=True)
class AddResult:
    added: int
    duplicates: int
    # Of ``added``, readings recognised by content (ContentKey) that were new.
    new_by_content: int = 0


@dataclass(frozen=True)
class DeviceRecord:
    address: str
    profile_id: str | None
    paired: bool
    last_sequence: int | None
    last_seen_at: datetime | None
    battery_pct: int | None
    # The patient's User ID on this (shared) device; None = the gateway's setting.
    user_index: int | None = None


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
        cols = {str(r[1]) for r in self._db.execute("PRAGMA table_info(device)")}
        if "user_index" not in cols:  # outboxes made before shared devices were handled
            self._db.execute("ALTER TABLE device ADD COLUMN user_index INTEGER")
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
        content: Sequence[ContentKey | None] | None = None,
        resend_window: timedelta = DEFAULT_RESEND_WINDOW,
    ) -> AddResult:
        """Store readings durably (one transaction, fsynced) before they go anywhere.

        ``last_sequence`` (glucose record number) is stored in the same transaction, so the
        next RACP request never skips a record that did not reach the disk. ``content``
        (one entry per reading, None where the reading id suffices) recognises resends of
        readings without time stamp (:class:`ContentKey`).
        """
        now = now or datetime.now(UTC)
        added = dupes = new_by_content = 0
        fresh: list[Reading] = []
        since = (now - resend_window).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i, r in enumerate(readings):
                    rid = str(r.reading_id)
                    if self._db.execute("SELECT 1 FROM taken WHERE reading_id = ?", (rid,)).fetchone():
                        dupes += 1
                        continue
                    ck = content[i] if content is not None else None
                    if ck is not None and ck.may_be_resend and self._resent(ck, since, now):
                        dupes += 1
                        continue
                    self._db.execute(
                        "INSERT INTO reading (reading_id, body) VALUES (?, ?)",
                        (rid, r.model_dump_json(exclude_none=True)),
                    )
                    self._db.execute("INSERT INTO taken (reading_id, taken_at) VALUES (?, ?)", (rid, now.isoformat()))
                    if ck is not None:
                        self._db.execute(
                            "INSERT INTO content_seen (content_key, seen_at) VALUES (?, ?)", (ck.key, now.isoformat())
                        )
                        new_by_content += 1
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
        return AddResult(added, dupes, new_by_content)

    def _resent(self, ck: ContentKey, since: str, now: datetime) -> bool:
        # The occurrence-th copy stored within the window, if there is one, is this value.
        row = self._db.execute(
            "SELECT id FROM content_seen WHERE content_key = ? AND seen_at >= ? ORDER BY id LIMIT 1 OFFSET ?",
            (ck.key, since, ck.occurrence - 1),
        ).fetchone()
        if row is None:
            return False
        self._db.execute("UPDATE content_seen SET seen_at = ? WHERE id = ?", (now.isoformat(), row[0]))
        return True

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

    def prune_taken(self, now: datetime | None = None, resend_window: timedelta = DEFAULT_RESEND_WINDOW) -> None:
        now = now or datetime.now(UTC)
        with self._lock:
            self._db.execute("DELETE FROM taken WHERE taken_at < ?", ((now - TAKEN_RETENTION).isoformat(),))
            self._db.execute("DELETE FROM content_seen WHERE seen_at < ?", ((now - resend_window).isoformat(),))

    # -- devices ---------------------------------------------------------------------

    def device(self, address: str) -> DeviceRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT address, profile_id, paired, last_sequence, last_seen_at, battery_pct, user_index FROM device "
                "WHERE address = ?",
                (address,),
            ).fetchone()
        return _device(row) if row else None

    def devices(self) -> list[DeviceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address, profile_id, paired, last_sequence, last_seen_at, battery_pct, user_index FROM device "
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

    def set_user_index(self, address: str, user_index: int | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO device (address, user_index) VALUES (?, ?) "
                "ON CONFLICT (address) DO UPDATE SET user_index = excluded.user_index",
                (address, user_index),
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
    address, profile_id, paired, last_seq, seen_at, battery, user_index = row
    return DeviceRecord(
        address=str(address),
        profile_id=None if profile_id is None else str(profile_id),
        paired=bool(paired),
        last_sequence=None if last_seq is None else int(str(last_seq)),
        last_seen_at=None if seen_at is None else datetime.fromisoformat(str(seen_at)),
        battery_pct=None if battery is None else int(str(battery)),
        user_index=None if user_index is None else int(str(user_index)),
    )


def readings_json(readings: Iterable[Reading]) -> list[str]:
    return [json.dumps(r.model_dump(mode="json", exclude_none=True)) for r in readings]
