"""Writing a prepared batch in one transaction: binary COPY to staging, then INSERT ... ON CONFLICT.

Re-delivery is harmless: observations and raw readings are keyed by the deterministic
reading id, so a second copy of a reading inserts nothing and is counted as a duplicate.
The patient of each reading is resolved here, inside the transaction, from the gateway's
assignment valid at ``measured_at``. The notification naming the patients that got new
rows is queued in the same transaction, so PostgreSQL delivers it exactly when (and only
if) the rows commit.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.range import Range

from device_profiles.messages import NEW_READINGS_CHANNEL
from device_profiles.wire import DeviceInfo
from ingest.prepare import DeadLetter, PreparedBatch, PreparedReading, observation_rows, raw_bytes, reading_dead_letter

log = logging.getLogger(__name__)

OBS_COLUMNS = (
    "reading_id",
    "component",
    "measured_at",
    "patient_id",
    "gateway_id",
    "device_address",
    "kind",
    "value",
    "unit",
    "censored",
    "status",
    "reject_reason",
    "flags",
    "original_value",
    "original_unit",
    "received_at",
)
OBS_TYPES = (
    "uuid",
    "text",
    "timestamptz",
    "uuid",
    "text",
    "text",
    "text",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text[]",
    "float8",
    "text",
    "timestamptz",
)
RAW_COLUMNS = ("reading_id", "measured_at", "gateway_id", "device", "raw")
RAW_TYPES = ("uuid", "timestamptz", "text", "text", "bytea")
DEAD_COLUMNS = ("topic", "gateway_id", "reading_index", "reason", "detail", "payload", "received_at")
DEAD_TYPES = ("text", "text", "int4", "text", "text", "bytea", "timestamptz")

# NOTIFY payloads must stay below 8000 bytes; the contract says at most 7,000.
NOTIFY_MAX_BYTES = 7000

_OBS_COLS = ", ".join(OBS_COLUMNS)
_RAW_COLS = ", ".join(RAW_COLUMNS)

# One temporary staging table for both targets: a row per observation, and on the first
# row of each reading also the reading's device JSON and GATT bytes, from which reading_raw
# is filled (one COPY pass instead of two). It lives as long as the connection; ON COMMIT
# DELETE ROWS empties it at every commit so each batch starts clean.
STAGE_COLUMNS = (*OBS_COLUMNS, "device", "raw")
STAGE_TYPES = (*OBS_TYPES, "text", "bytea")
STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    LIKE observation INCLUDING DEFAULTS, device text, raw bytea
) ON COMMIT DELETE ROWS;
"""
# Plain statements, not SQL PREPARE: psycopg prepares them itself after a few uses and
# knows to forget them when a failed transaction deallocates them.
INSERT_OBS = f"""
WITH ins AS (
    INSERT INTO observation ({_OBS_COLS}) SELECT {_OBS_COLS} FROM ingest_stage
    ON CONFLICT DO NOTHING
    RETURNING patient_id, status
)
SELECT patient_id, status, count(*) FROM ins GROUP BY patient_id, status
"""
INSERT_RAW = f"""
INSERT INTO reading_raw ({_RAW_COLS})
SELECT reading_id, measured_at, gateway_id, device::jsonb, raw FROM ingest_stage WHERE device IS NOT NULL
ON CONFLICT DO NOTHING
"""

# CLINICAL_RULES.md: weight change > 5 kg from the previous day is likely another person.
# The reference is the latest accepted weight of the patient committed for the previous
# local (Europe/Stockholm) day; one index probe (observation_patient_idx) per weight.
WEIGHT_CHECK = """
WITH cur AS (
    SELECT s.reading_id, s.patient_id, s.value,
           (date_trunc('day', s.measured_at, 'Europe/Stockholm') AT TIME ZONE 'Europe/Stockholm'
               - interval '1 day') AT TIME ZONE 'Europe/Stockholm' AS prev_start,
           date_trunc('day', s.measured_at, 'Europe/Stockholm') AS day_start
    FROM ingest_stage s
    WHERE s.component = 'weight' AND s.status <> 'rejected' AND s.value IS NOT NULL
), bad AS (
    SELECT cur.reading_id, cur.value - p.value AS change_kg
    FROM cur CROSS JOIN LATERAL (
        SELECT o.value FROM observation o
        WHERE o.patient_id = cur.patient_id AND o.component = 'weight' AND o.status <> 'rejected'
          AND o.value IS NOT NULL AND o.measured_at >= cur.prev_start AND o.measured_at < cur.day_start
        ORDER BY o.measured_at DESC LIMIT 1
    ) p
    WHERE abs(cur.value - p.value) > %(max_change)s
)
UPDATE ingest_stage t
SET status = 'rejected',
    reject_reason = format('weight changed %%s kg from the previous day (likely another person)',
                           round(bad.change_kg::numeric, 1))
FROM bad WHERE t.reading_id = bad.reading_id
"""

DEVICE_UPSERT = """
INSERT INTO device AS d (gateway_id, address, model, serial, firmware, kind, battery_pct, first_seen_at, last_seen_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (gateway_id, address) DO UPDATE SET
    model = EXCLUDED.model,
    serial = coalesce(EXCLUDED.serial, d.serial),
    firmware = coalesce(EXCLUDED.firmware, d.firmware),
    kind = coalesce(EXCLUDED.kind, d.kind),
    battery_pct = CASE WHEN EXCLUDED.last_seen_at >= d.last_seen_at
                       THEN coalesce(EXCLUDED.battery_pct, d.battery_pct) ELSE d.battery_pct END,
    first_seen_at = least(d.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = greatest(d.last_seen_at, EXCLUDED.last_seen_at)
"""


@dataclass(slots=True)
class StoreResult:
    readings_stored: int = 0
    rows_by_status: Counter[str] = field(default_factory=Counter)
    readings_duplicate: int = 0
    rows_stored: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    patients: list[uuid.UUID] = field(default_factory=list)
    statuses: int = 0


DeviceKey = tuple[str, str]
DeviceRow = tuple[str, str, str, str | None, str | None, str | None, int | None, datetime, datetime]


class DeviceCache:
    """Which device rows were written lately, so a stream of readings from one device does
    not rewrite its row every batch: ``last_seen_at`` may lag by up to ``ttl_s``."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self._ttl_s = ttl_s
        self._written: dict[DeviceKey, tuple[tuple[Any, ...], float]] = {}

    def wanted(self, key: DeviceKey, row: DeviceRow) -> bool:
        entry = self._written.get(key)
        return entry is None or entry[0] != row[2:7] or time.monotonic() - entry[1] > self._ttl_s

    def remember(self, rows: dict[DeviceKey, DeviceRow]) -> None:
        now = time.monotonic()
        for key, row in rows.items():
            self._written[key] = (row[2:7], now)


def setup_connection(conn: psycopg.Connection[Any]) -> None:
    """Create the staging tables and prepared statements of a new connection."""
    with conn.transaction():
        conn.execute(STAGE_DDL)


def _resolve(
    conn: psycopg.Connection[Any], readings: list[PreparedReading]
) -> tuple[list[tuple[PreparedReading, uuid.UUID]], list[DeadLetter]]:
    gateways = sorted({r.gateway_id for r in readings})
    rows = conn.execute(
        "SELECT g.id, a.patient_id, a.valid FROM gateway g"
        " LEFT JOIN gateway_assignment a ON a.gateway_id = g.id WHERE g.id = ANY(%s)",
        (gateways,),
    ).fetchall()
    known: set[str] = set()
    assignments: dict[str, list[tuple[uuid.UUID, Range[datetime]]]] = defaultdict(list)
    for gw, patient, valid in rows:
        known.add(gw)
        if patient is not None:
            assignments[gw].append((patient, valid))
    resolved: list[tuple[PreparedReading, uuid.UUID]] = []
    dead: list[DeadLetter] = []
    for r in readings:
        if r.gateway_id not in known:
            dead.append(reading_dead_letter(r, "unknown_gateway", f"gateway {r.gateway_id} is not registered"))
            continue
        patient_id = next((p for p, valid in assignments[r.gateway_id] if r.measured_at in valid), None)
        if patient_id is None:
            detail = f"gateway {r.gateway_id} has no patient at {r.measured_at.isoformat()}"
            dead.append(reading_dead_letter(r, "unassigned_gateway", detail))
            continue
        resolved.append((r, patient_id))
    return resolved, dead


def _device_rows(resolved: list[tuple[PreparedReading, uuid.UUID]]) -> dict[DeviceKey, DeviceRow]:
    latest: dict[DeviceKey, DeviceRow] = {}
    for r, _ in resolved:
        d = r.reading.device
        key = (r.gateway_id, d.address)
        seen = r.reading.received_at
        prev = latest.get(key)
        if prev is None or seen >= prev[8]:
            first = seen if prev is None else min(prev[7], seen)
            latest[key] = (
                r.gateway_id,
                d.address,
                d.model,
                d.serial,
                d.firmware,
                r.reading.kind.value,
                d.battery_pct,
                first,
                seen,
            )
    return latest


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: Any
) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _stage_rows(resolved: list[tuple[PreparedReading, uuid.UUID]]) -> Iterator[tuple[Any, ...]]:
    """Staging rows in :data:`STAGE_COLUMNS` order; the reading_raw part on each reading's first row."""
    device_json: dict[tuple[Any, ...], str] = {}
    for r, patient in resolved:
        rows = observation_rows(r, patient)
        yield (*rows[0], _device_json(r.reading.device, device_json), raw_bytes(r.reading))
        for row in rows[1:]:
            yield (*row, None, None)


def _device_json(device: DeviceInfo, cache: dict[tuple[Any, ...], str]) -> str:
    # A batch holds many readings of few devices: serialise each device once. Keyed by a
    # plain tuple of all its field values, which hashes and compares far cheaper than the model.
    key = tuple(device.__dict__.values())
    text = cache.get(key)
    if text is None:
        text = cache[key] = device.model_dump_json(exclude_none=True)
    return text


def _notify(conn: psycopg.Connection[Any], patients: list[uuid.UUID]) -> None:
    empty = len(_notify_payload([]))
    chunk: list[str] = []
    size = empty
    for p in sorted(str(p) for p in patients):
        item = len(p) + 3  # two quotes and a comma
        if chunk and size + item > NOTIFY_MAX_BYTES:
            conn.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, _notify_payload(chunk)))
            chunk, size = [], empty
        chunk.append(p)
        size += item
    if chunk:
        conn.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, _notify_payload(chunk)))


def _notify_payload(patients: list[str]) -> str:
    return json.dumps({"patients": patients}, separators=(",", ":"))


def store(
    conn: psycopg.Connection[Any],
    batch: PreparedBatch,
    *,
    max_weight_change_kg: float,
    device_cache: DeviceCache | None = None,
) -> tuple[StoreResult, dict[DeviceKey, DeviceRow]]:
    """Write ``batch`` in one transaction (committed on return).

    Returns the result and the device rows written; the caller tells ``device_cache``
    about them once the transaction has committed.
    """
    result = StoreResult()
    dead = list(batch.dead_letters)
    devices: dict[DeviceKey, DeviceRow] = {}
    with conn.transaction():
        if batch.readings:
            resolved, unresolved = _resolve(conn, batch.readings)
            dead.extend(unresolved)
        else:
            resolved = []
        if resolved:
            _copy(conn, "ingest_stage", STAGE_COLUMNS, STAGE_TYPES, _stage_rows(resolved))
            if any("weight" in r.reading.values for r, _ in resolved):
                conn.execute(WEIGHT_CHECK, {"max_change": max_weight_change_kg})
            patients: set[uuid.UUID] = set()
            for patient, status, n_rows in conn.execute(INSERT_OBS).fetchall():
                patients.add(patient)
                result.rows_stored += n_rows
                result.rows_by_status[status] += n_rows
            result.patients = sorted(patients)
            # Readings are counted once each through their reading_raw row.
            result.readings_stored = conn.execute(INSERT_RAW).rowcount
            result.readings_duplicate = len(resolved) - result.readings_stored
            devices = _device_rows(resolved)
        for s in batch.statuses:
            result.statuses += 1
            if s.status is None:
                conn.execute(
                    "UPDATE gateway SET online = false, last_status_at = now() WHERE id = %s AND online",
                    (s.gateway_id,),
                )
                continue
            found = conn.execute(
                "UPDATE gateway SET online = true, last_status = %s::jsonb, last_status_at = %s"
                " WHERE id = %s RETURNING id",
                (s.status.model_dump_json(by_alias=True), s.status.sent_at, s.gateway_id),
            ).fetchone()
            if found is None:
                log.debug("status of unregistered gateway %s ignored", s.gateway_id)
                continue
            for d in s.status.devices:
                seen = d.last_seen_at or s.status.sent_at
                devices[(s.gateway_id, d.address)] = (
                    s.gateway_id,
                    d.address,
                    d.model,
                    None,
                    None,
                    d.kind,
                    d.battery_pct,
                    seen,
                    seen,
                )
        devices = {k: row for k, row in devices.items() if device_cache is None or device_cache.wanted(k, row)}
        if devices:
            with conn.cursor() as cur:
                cur.executemany(DEVICE_UPSERT, list(devices.values()))
        if dead:
            _copy(
                conn,
                "dead_letter",
                DEAD_COLUMNS,
                DEAD_TYPES,
                ((d.topic, d.gateway_id, d.reading_index, d.reason, d.detail, d.payload, d.received_at) for d in dead),
            )
            result.dead_letters.update(d.reason for d in dead)
        if result.patients:
            _notify(conn, result.patients)
    return result, devices
