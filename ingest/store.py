"""Writing a prepared batch in one transaction: binary COPY, optimistic first.

Re-delivery is harmless: a reading is stored once per deterministic reading id, whatever
its ``measured_at`` (``reading_key``, keyed by the id alone: the observation and
reading_raw keys must include the time column of the hypertable). Almost every batch
holds only new readings, so it is first COPYed straight into ``reading_key``,
``observation`` and ``reading_raw`` inside a savepoint (the rate of a raw COPY). If any
reading is already stored, PostgreSQL refuses the key COPY with a unique violation; the
savepoint is rolled back and the batch goes the safe way instead: COPY into staging
tables, ``INSERT ... ON CONFLICT DO NOTHING`` into ``reading_key``, then the rows of only
the readings that got a key; the rest are counted as duplicates. A reading twice in one
batch is stored once (the first) before any of this. Duplicates come in bursts (a restarted worker
or broker re-delivers what was not acknowledged), so after one the :class:`DirectCopyGate`
keeps batches on the safe way until a run of them came without duplicates.

The patient of each reading is resolved inside the transaction, from the gateway's
assignment valid at ``measured_at``: the assignments are read here, the routing itself is
pure (:func:`ingest.pipeline.route`), and so is applying the weight check's verdicts. The
notification naming the patients that got new rows is queued in the same transaction, so
PostgreSQL delivers it exactly when (and only if) the rows commit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from ingest.copy_binary import KEY_COLUMNS, OBS_COLUMNS, RAW_COLUMNS, SIGNATURE, TRAILER, encode_rows
from ingest.pipeline import (
    DeviceKey,
    DeviceRow,
    GatewayRoutes,
    PreparedBatch,
    PreparedReading,
    Resolved,
    WeightVerdict,
    apply_weight_verdicts,
    device_rows,
    route,
    weight_candidates,
)
from schema import tables
from schema.notify import NEW_READINGS_CHANNEL, encode_new_readings

log = logging.getLogger(__name__)

DEAD_COLUMNS = (
    "topic",
    "gateway_id",
    "reading_index",
    "reason",
    "detail",
    "payload",
    "received_at",
    "payload_bytes",
    "payload_sha256",
)
DEAD_TYPES = ("text", "text", "int4", "text", "text", "bytea", "timestamptz", "int4", "bytea")


_OBS_COLS = ", ".join(OBS_COLUMNS)
_RAW_COLS = ", ".join(RAW_COLUMNS)

# The staging tables of the safe way, filled by the same COPY data as the direct way. They
# live as long as the connection; ON COMMIT DELETE ROWS empties them at every commit so
# each batch starts clean.
STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage_obs (LIKE observation INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS ingest_stage_raw (LIKE reading_raw INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS ingest_stage_key (LIKE reading_key INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""
# Every ON CONFLICT names its target, the table's primary key. Without one, TimescaleDB
# must check every unique index against every batch of a compressed chunk and decompresses
# them all (4 late rows: 240-290 ms; 40 rows: 2.2 s); with the key it prunes batches by
# their min/max and bloom metadata (20,000 batches down to 55: 22 ms).
# Plain statements, not SQL PREPARE: psycopg prepares them itself after a few uses and
# knows to forget them when a failed transaction deallocates them.
# The keys first; the staged keys that were already taken are dropped from the stage, so
# the rows that follow are those of new readings only. Returns how many readings are new.
INSERT_KEYS = f"""
WITH k AS (
    INSERT INTO reading_key ({", ".join(KEY_COLUMNS)}) SELECT {", ".join(KEY_COLUMNS)} FROM ingest_stage_key
    ON CONFLICT (reading_id) DO NOTHING
    RETURNING reading_id
), taken AS (
    DELETE FROM ingest_stage_key s WHERE NOT EXISTS (SELECT 1 FROM k WHERE k.reading_id = s.reading_id)
)
SELECT count(*) FROM k
"""
_NEW = "WHERE EXISTS (SELECT 1 FROM ingest_stage_key k WHERE k.reading_id = s.reading_id)"
INSERT_OBS = f"""
WITH ins AS (
    INSERT INTO observation ({_OBS_COLS}) SELECT {_OBS_COLS} FROM ingest_stage_obs s {_NEW}
    ON CONFLICT (reading_id, component, measured_at) DO NOTHING
    RETURNING patient_id, status
)
SELECT patient_id, status, count(*) FROM ins GROUP BY patient_id, status
"""
INSERT_RAW = f"""
INSERT INTO reading_raw ({_RAW_COLS}) SELECT {_RAW_COLS} FROM ingest_stage_raw s {_NEW}
ON CONFLICT (reading_id, measured_at) DO NOTHING
"""

# Someone else on the scale (CLINICAL_RULES.md: a change > 5 kg from the previous day is
# likely another person). Two references, both of the patient's accepted weights committed
# before this batch: the latest of the previous local (Europe/Stockholm) day, and the median
# of the last 14 days when there are at least WEIGHT_MEDIAN_MIN_COUNT of them (a scale
# without users shared by two people: the other person's weights are far from the
# patient's usual ones even on a day after the patient did not weigh). A weight more than
# max_change kg from the first or more than WEIGHT_MAX_REL_FROM_MEDIAN of the second is
# stored as rejected with the flag probably_someone_else: shown to staff, not used by the
# rules, and not a reference for later weights. Index probes on observation_patient_idx.
WEIGHT_MEDIAN_DAYS = 14
WEIGHT_MEDIAN_MIN_COUNT = 3
WEIGHT_MAX_REL_FROM_MEDIAN = 0.15
# {lower} and {upper} are literal bounds of the whole batch's windows (see _weight_bounds):
# the per-weight windows depend on the outer row, so TimescaleDB could only exclude chunks
# at run time, after planning every chunk (161 chunks: 57 ms planning, 132 ms execution);
# with constants the planner drops the chunks outside them.
WEIGHT_CHECK = """
SELECT cur.reading_id, cur.value - p.value AS change_kg, cur.value - m.median_kg AS from_median_kg, m.median_kg
FROM unnest(%(ids)b::uuid[], %(patients)b::uuid[], %(at)b::timestamptz[], %(kg)b::float8[])
    AS cur(reading_id, patient_id, measured_at, value)
LEFT JOIN LATERAL (
    SELECT o.value FROM observation o
    WHERE o.patient_id = cur.patient_id AND o.component = 'weight' AND o.status <> 'rejected'
      AND o.value IS NOT NULL
      AND o.measured_at >= {lower} AND o.measured_at < {upper}
      AND o.measured_at >= (date_trunc('day', cur.measured_at, 'Europe/Stockholm') AT TIME ZONE 'Europe/Stockholm'
                            - interval '1 day') AT TIME ZONE 'Europe/Stockholm'
      AND o.measured_at < date_trunc('day', cur.measured_at, 'Europe/Stockholm')
    ORDER BY o.measured_at DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY o.value) AS median_kg, count(*) AS n
    FROM observation o
    WHERE o.patient_id = cur.patient_id AND o.component = 'weight' AND o.status <> 'rejected'
      AND o.value IS NOT NULL
      AND o.measured_at >= {median_lower} AND o.measured_at < {upper}
      AND o.measured_at >= cur.measured_at - make_interval(days => {median_days}) AND o.measured_at < cur.measured_at
) m ON true
WHERE abs(cur.value - p.value) > %(max_change)s
   OR (m.n >= {median_min} AND abs(cur.value - m.median_kg) > {max_rel} * m.median_kg)
"""
# The start of the previous local day is at most 50 hours before a reading (a local day is
# at most 25 hours long), so [oldest - 50 h, newest) holds every weight's previous-day
# window; the median's window has its own lower bound, WEIGHT_MEDIAN_DAYS before the oldest.
WEIGHT_WINDOW_BEFORE = timedelta(hours=50)

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
    # How the readings were written: "direct" (COPY into the tables), "staged" (through
    # the staging tables, ON CONFLICT), or None when the batch held no storable reading.
    path: str | None = None


# The end of the newest compressed chunk of either hypertable: readings older than this may
# land in a compressed chunk. A COPY there has no conflict target to prune by, so TimescaleDB
# decompresses every batch of the chunk to check the keys; such late data takes the staged way.
COMPRESSED_HORIZON = """
SELECT max(range_end) FROM timescaledb_information.chunks
WHERE hypertable_schema = current_schema() AND hypertable_name IN ('observation', 'reading_raw') AND is_compressed
"""


def compressed_horizon(conn: psycopg.Connection[Any]) -> datetime | None:
    """Where compressed chunks end (see COMPRESSED_HORIZON); None on plain PostgreSQL or before any compression."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return None
    row = conn.execute(COMPRESSED_HORIZON).fetchone()
    return row[0] if row else None


class DirectCopyGate:
    """Whether the next batch should try the direct COPY.

    Yes, unless a batch lately held readings that were already stored: then the next
    ``quiet_batches`` batches take the staged way, and every staged batch that still finds
    duplicates starts the count again. A refused direct COPY costs its COPY once more, so
    during a burst of re-delivery this saves that waste; afterwards the fast way returns.
    And never for a batch reaching back before the compressed horizon (looked up at most
    every ``horizon_ttl_s``; a chunk compressed in between only costs speed, not rows).
    Shared by a worker's writer threads (plain int updates under the GIL).
    """

    def __init__(self, quiet_batches: int = 20, horizon_ttl_s: float = 30.0) -> None:
        self._quiet_batches = quiet_batches
        self._staged_left = 0
        self._horizon_ttl_s = horizon_ttl_s
        self._horizon: datetime | None = None
        self._horizon_at: float | None = None

    def try_direct(self) -> bool:
        return self._staged_left == 0

    def reaches_compressed(self, conn: psycopg.Connection[Any], oldest: datetime) -> bool:
        """Whether a batch whose oldest reading is ``oldest`` may land in a compressed chunk."""
        now = time.monotonic()
        if self._horizon_at is None or now - self._horizon_at >= self._horizon_ttl_s:
            self._horizon, self._horizon_at = compressed_horizon(conn), now
        return self._horizon is not None and oldest < self._horizon

    def record(self, result: StoreResult) -> None:
        if result.readings_duplicate:
            self._staged_left = self._quiet_batches
        elif result.path == "staged":
            self._staged_left = max(0, self._staged_left - 1)


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
    """Prepare a new connection: UTF-8 text (the COPY data is encoded so) and the staging tables."""
    with conn.transaction():
        conn.execute("SET client_encoding TO 'UTF8'")
        conn.execute(STAGE_DDL)


def gateway_routes(conn: psycopg.Connection[Any], readings: Iterable[PreparedReading]) -> GatewayRoutes:
    """The registered gateways among those of ``readings``, with their assignments."""
    gateways = sorted({r.gateway_id for r in readings})
    rows = conn.execute(
        "SELECT g.id, a.patient_id, a.valid FROM gateway g"
        " LEFT JOIN gateway_assignment a ON a.gateway_id = g.id WHERE g.id = ANY(%b)",
        (gateways,),
    ).fetchall()
    routes = GatewayRoutes()
    for gw, patient, valid in rows:
        if patient is not None and not valid.isempty:
            lower, upper = (None if t is None else t.astimezone(UTC) for t in (valid.lower, valid.upper))
            routes.add(gw, (patient, lower, upper, valid.lower_inc, valid.upper_inc))
        else:
            routes.add(gw, None)
    return routes


def _copy(conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], data: Iterable[bytes]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        for chunk in data:
            copy.write(chunk)


def _copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: Iterable[Any]
) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _copy_batch(
    conn: psycopg.Connection[Any],
    resolved: list[Resolved],
    obs_table: str,
    raw_table: str,
    key_table: str,
) -> None:
    raw = bytearray(SIGNATURE)
    keys = bytearray(SIGNATURE)
    # Observations stream while they are encoded; the raw rows and keys are complete after.
    # A reading already stored under another measured_at passes the first two and is
    # refused by the key (the direct way's savepoint then undoes all three).
    _copy(conn, obs_table, OBS_COLUMNS, encode_rows(resolved, raw, keys))
    raw += TRAILER
    keys += TRAILER
    _copy(conn, raw_table, RAW_COLUMNS, (bytes(raw),))
    _copy(conn, key_table, KEY_COLUMNS, (bytes(keys),))


def _weight_bounds(measured_at: list[datetime]) -> tuple[datetime, datetime]:
    """Constant bounds around every weight's reference window: [oldest - 50 h, newest)."""
    return min(measured_at) - WEIGHT_WINDOW_BEFORE, max(measured_at)


def weight_check_sql(measured_at: list[datetime], *, bounded: bool = True) -> sql.Composed:
    """WEIGHT_CHECK with the batch's literal bounds and the median constants filled in
    (``bounded=False``: infinite bounds, what the planner saw before; for the benchmark)."""
    lower, upper = _weight_bounds(measured_at)
    median_lower = min(measured_at) - timedelta(days=WEIGHT_MEDIAN_DAYS)
    lit = sql.Literal
    bounds = (lit(lower), lit(median_lower), lit(upper)) if bounded else (lit("-infinity"),) * 2 + (lit("infinity"),)
    return sql.SQL(WEIGHT_CHECK).format(
        lower=bounds[0],
        median_lower=bounds[1],
        upper=bounds[2],
        median_days=lit(WEIGHT_MEDIAN_DAYS),
        median_min=lit(WEIGHT_MEDIAN_MIN_COUNT),
        max_rel=lit(WEIGHT_MAX_REL_FROM_MEDIAN),
    )


def _check_weights(conn: psycopg.Connection[Any], resolved: list[Resolved], max_change_kg: float) -> list[Resolved]:
    """``resolved`` with the weights of probably someone else rejected (see WEIGHT_CHECK)."""
    candidates = weight_candidates(resolved)
    if not candidates:
        return resolved
    at = [c.reading.measured_at for c in candidates]
    params = {
        "ids": [c.reading.reading.reading_id for c in candidates],
        "patients": [c.patient_id for c in candidates],
        "at": at,
        "kg": [c.kg for c in candidates],
        "max_change": max_change_kg,
    }
    query = weight_check_sql(at)
    # Planned afresh for every batch, never prepared: a plan cached while observation looked
    # empty (just after a restore, a bulk delete or a TRUNCATE that autovacuum then saw)
    # is a sequential scan per weight, and stayed in use as the table grew - seen as
    # 60-80 s stalls per 200,000 readings. The literal bounds change every batch anyway.
    rows = conn.execute(query, params, prepare=False).fetchall()
    verdicts: dict[uuid.UUID, WeightVerdict] = {rid: (change, off, median) for rid, change, off, median in rows}
    return apply_weight_verdicts(
        resolved, candidates, verdicts, max_change_kg=max_change_kg, median_days=WEIGHT_MEDIAN_DAYS
    )


def _write_direct(conn: psycopg.Connection[Any], resolved: list[Resolved]) -> bool:
    """COPY straight into the tables; False (nothing written) if any reading is already stored."""
    try:
        with conn.transaction():  # a savepoint: a refused COPY leaves the batch's transaction usable
            _copy_batch(conn, resolved, tables.OBSERVATION, tables.READING_RAW, tables.READING_KEY)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def _count_direct(result: StoreResult, resolved: list[Resolved]) -> None:
    patients: set[uuid.UUID] = set()
    rows_by_status: dict[str, int] = {}
    last_patient = None
    for r, patient in resolved:
        n_rows = len(r.reading.values)
        rows_by_status[r.status] = rows_by_status.get(r.status, 0) + n_rows
        # A gateway's readings share one patient object: hash it (UUID.__hash__ is Python) once per run.
        if patient is not last_patient:
            patients.add(patient)
            last_patient = patient
    result.rows_by_status.update(rows_by_status)
    result.rows_stored += sum(rows_by_status.values())
    result.patients = sorted(patients)
    result.readings_stored = len(resolved)


def _write_staged(conn: psycopg.Connection[Any], resolved: list[Resolved], result: StoreResult) -> None:
    _copy_batch(conn, resolved, "ingest_stage_obs", "ingest_stage_raw", "ingest_stage_key")
    row = conn.execute(INSERT_KEYS).fetchone()
    new = int(row[0]) if row else 0
    patients: set[uuid.UUID] = set()
    for patient, status, n_rows in conn.execute(INSERT_OBS).fetchall():
        patients.add(patient)
        result.rows_stored += n_rows
        result.rows_by_status[status] += n_rows
    result.patients = sorted(patients)
    conn.execute(INSERT_RAW)
    result.readings_stored = new
    result.readings_duplicate += len(resolved) - new


def _notify(conn: psycopg.Connection[Any], patients: list[uuid.UUID]) -> None:
    for payload in encode_new_readings(patients):
        conn.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, payload))


def store(
    conn: psycopg.Connection[Any],
    batch: PreparedBatch,
    *,
    max_weight_change_kg: float,
    device_cache: DeviceCache | None = None,
    gate: DirectCopyGate | None = None,
) -> tuple[StoreResult, dict[DeviceKey, DeviceRow]]:
    """Write ``batch`` in one transaction (committed on return).

    Returns the result and the device rows written; the caller tells ``device_cache``
    about them, and ``gate`` about the result, once the transaction has committed.
    Without a gate the direct COPY is tried first unless the batch reaches into compressed
    chunks (looked up for this batch alone).
    """
    if gate is None:
        gate = DirectCopyGate(horizon_ttl_s=0.0)
    result = StoreResult()
    dead = list(batch.dead_letters)
    devices: dict[DeviceKey, DeviceRow] = {}
    with conn.transaction():
        resolved: list[Resolved] = []
        if batch.readings:
            routed = route(batch.readings, gateway_routes(conn, batch.readings))
            dead.extend(routed.dead_letters)
            resolved, result.readings_duplicate = routed.resolved, routed.duplicates
        if resolved:
            resolved = _check_weights(conn, resolved, max_weight_change_kg)
            oldest = min(r.measured_at for r, _ in resolved)
            if gate.try_direct() and not gate.reaches_compressed(conn, oldest) and _write_direct(conn, resolved):
                result.path = "direct"
                _count_direct(result, resolved)
            else:
                result.path = "staged"
                _write_staged(conn, resolved, result)
            devices = device_rows(resolved)
        # Rows are locked in key order (statuses by gateway, stably; devices by key): two
        # writers storing overlapping batches then wait for each other, never deadlock.
        for s in sorted(batch.statuses, key=lambda st: st.gateway_id):
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
                cur.executemany(DEVICE_UPSERT, [devices[k] for k in sorted(devices)])
        if dead:
            _copy_rows(
                conn,
                tables.DEAD_LETTER,
                DEAD_COLUMNS,
                DEAD_TYPES,
                (
                    (
                        d.topic,
                        d.gateway_id,
                        d.reading_index,
                        d.reason,
                        d.detail,
                        d.payload,
                        d.received_at,
                        d.payload_bytes,
                        d.payload_sha256,
                    )
                    for d in dead
                ),
            )
            result.dead_letters.update(d.reason for d in dead)
        if result.patients:
            _notify(conn, result.patients)
    return result, devices
