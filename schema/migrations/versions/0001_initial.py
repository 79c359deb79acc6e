"""Initial schema: relational tables, the observation store, alerts, dead letters, audit.

The observation table becomes a TimescaleDB hypertable (compressed after a configurable
age, segmented by patient, with a daily per-patient continuous aggregate) when the
extension can be created; otherwise it stays a plain table with a BRIN index on time and
the daily summary is an ordinary view. Either way every reader queries the same names:
``observation`` and ``observation_daily``.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import logging
import os
import re
from typing import NamedTuple

from alembic import op
from sqlalchemy import text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("schema.migrations")

RELATIONAL = """
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE IF NOT EXISTS care_unit (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staff (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subject       text NOT NULL UNIQUE,          -- OIDC 'sub' (HSA-id with SITHS)
    display_name  text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}'
        CHECK (roles <@ ARRAY['nurse','physician','admin','auditor']::text[]),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staff_unit (
    staff_id  uuid NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    unit_id   uuid NOT NULL REFERENCES care_unit(id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, unit_id)
);

-- Patients are known by a pseudonymous id everywhere; the personal identity number is
-- stored once, in patient_identity, which only the enrollment path touches.
CREATE TABLE IF NOT EXISTS patient (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pseudonym     text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    birth_year    integer CHECK (birth_year BETWEEN 1900 AND 2100),
    unit_id       uuid NOT NULL REFERENCES care_unit(id),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS patient_unit_idx ON patient (unit_id);

CREATE TABLE IF NOT EXISTS patient_identity (
    patient_id     uuid PRIMARY KEY REFERENCES patient(id) ON DELETE CASCADE,
    personnummer   text NOT NULL UNIQUE CHECK (personnummer ~ '^[0-9]{8}-?[0-9]{4}$')
);

-- Care plans are versioned: editing inserts a new version, the history stays.
CREATE TABLE IF NOT EXISTS care_plan (
    id                 bigserial PRIMARY KEY,
    patient_id         uuid NOT NULL REFERENCES patient(id) ON DELETE CASCADE,
    version            integer NOT NULL,
    valid_from         timestamptz NOT NULL DEFAULT now(),
    conditions         text[] NOT NULL DEFAULT '{}',
    thresholds         jsonb NOT NULL DEFAULT '{}',   -- rule parameter overrides, by rule id
    schedule           jsonb NOT NULL DEFAULT '{}',   -- expected measurements per kind
    dry_weight_kg      double precision,
    personal_best_pef  double precision,
    spo2_target        text NOT NULL DEFAULT 'standard' CHECK (spo2_target IN ('standard','hypercapnic')),
    notes              text,
    created_by         uuid REFERENCES staff(id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, version)
);
CREATE OR REPLACE VIEW care_plan_current AS
    SELECT DISTINCT ON (patient_id) * FROM care_plan ORDER BY patient_id, version DESC;

CREATE TABLE IF NOT EXISTS gateway (
    id                 text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{2,62}$'),
    serial             text UNIQUE,
    enrolled_at        timestamptz,
    credential_hash    text,
    last_status        jsonb,
    last_status_at     timestamptz,
    online             boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- A gateway kit serves one patient at a time; the assignment is time-bounded so that
-- readings are attributed by when they were measured, not when they arrived.
CREATE TABLE IF NOT EXISTS gateway_assignment (
    id          bigserial PRIMARY KEY,
    gateway_id  text NOT NULL REFERENCES gateway(id),
    patient_id  uuid NOT NULL REFERENCES patient(id),
    valid       tstzrange NOT NULL CHECK (NOT isempty(valid)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (gateway_id WITH =, valid WITH &&)
);
CREATE INDEX IF NOT EXISTS gateway_assignment_patient_idx ON gateway_assignment (patient_id);

CREATE TABLE IF NOT EXISTS enrollment_code (
    code_hash    text PRIMARY KEY,
    gateway_id   text NOT NULL REFERENCES gateway(id),
    patient_id   uuid REFERENCES patient(id),
    created_by   uuid REFERENCES staff(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

CREATE TABLE IF NOT EXISTS device (
    id             bigserial PRIMARY KEY,
    gateway_id     text NOT NULL REFERENCES gateway(id),
    address        text NOT NULL,
    model          text NOT NULL,
    serial         text,
    firmware       text,
    kind           text,
    battery_pct    integer,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, address)
);

CREATE TABLE IF NOT EXISTS alert (
    id                        bigserial PRIMARY KEY,
    patient_id                uuid NOT NULL REFERENCES patient(id),
    rule_id                   text NOT NULL,
    condition                 text,
    status                    text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open','acknowledged','snoozed','resolved')),
    severity                  text NOT NULL CHECK (severity IN ('info','low','medium','high','critical')),
    title                     text NOT NULL,
    opened_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    last_fired_at             timestamptz NOT NULL DEFAULT now(),
    fire_count                integer NOT NULL DEFAULT 1,
    latest_value              double precision,
    evidence                  jsonb NOT NULL DEFAULT '{}',
    snoozed_until             timestamptz,
    acknowledged_at           timestamptz,
    acknowledged_by           uuid REFERENCES staff(id),
    escalated_at              timestamptz,
    escalation_level          integer NOT NULL DEFAULT 0,
    resolution_suggested_at   timestamptz,
    resolved_at               timestamptz,
    resolved_by               uuid REFERENCES staff(id)
);
-- One open alert per (patient, rule): while a condition lasts the alert is updated.
CREATE UNIQUE INDEX IF NOT EXISTS alert_one_open_idx ON alert (patient_id, rule_id) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS alert_queue_idx ON alert (status, severity, opened_at);

CREATE TABLE IF NOT EXISTS alert_event (
    id         bigserial PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alert(id) ON DELETE CASCADE,
    event      text NOT NULL CHECK (event IN ('opened','updated','escalated_severity','acknowledged',
                   'commented','snoozed','escalated','resolution_suggested','resolved','reopened')),
    at         timestamptz NOT NULL DEFAULT now(),
    staff_id   uuid REFERENCES staff(id),
    comment    text,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alert_event_alert_idx ON alert_event (alert_id, at);

-- Nothing that arrives is dropped: what cannot be stored as an observation lands here.
CREATE TABLE IF NOT EXISTS dead_letter (
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text NOT NULL,
    gateway_id     text,
    reading_index  integer,
    reason         text NOT NULL,
    detail         text,
    payload        bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letter_received_idx ON dead_letter (received_at);

-- Append-only: no role may change or delete audit rows (trigger below).
CREATE TABLE IF NOT EXISTS audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    staff_id     uuid REFERENCES staff(id),
    subject      text,
    action       text NOT NULL,
    resource     text NOT NULL,
    patient_id   uuid REFERENCES patient(id),
    remote_addr  text,
    reason       text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_patient_idx ON audit_log (patient_id, at);
CREATE INDEX IF NOT EXISTS audit_log_staff_idx ON audit_log (staff_id, at);

CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE OR REPLACE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
"""

OBSERVATIONS = """
-- One row per reading component (narrow): e.g. a BP reading gives systolic, diastolic,
-- mean_arterial and pulse rows sharing one reading_id.
CREATE TABLE IF NOT EXISTS observation (
    reading_id       uuid NOT NULL,
    component        text NOT NULL,
    measured_at      timestamptz NOT NULL,
    patient_id       uuid NOT NULL,
    gateway_id       text NOT NULL,
    device_address   text NOT NULL,
    kind             text NOT NULL,
    value            double precision,
    unit             text NOT NULL,
    censored         text CHECK (censored IN ('low','high')),
    status           text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid','flagged','rejected')),
    reject_reason    text,
    flags            text[] NOT NULL DEFAULT '{}',
    original_value   double precision,
    original_unit    text,
    received_at      timestamptz NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reading_id, component, measured_at)
);
CREATE INDEX IF NOT EXISTS observation_patient_idx ON observation (patient_id, component, measured_at DESC);

-- The GATT bytes of each reading, so any reading can be re-decoded later.
CREATE TABLE IF NOT EXISTS reading_raw (
    reading_id   uuid NOT NULL,
    measured_at  timestamptz NOT NULL,
    gateway_id   text NOT NULL,
    device       jsonb NOT NULL,
    raw          bytea,
    PRIMARY KEY (reading_id, measured_at)
);
"""

DAILY_SELECT = """
    SELECT patient_id, kind, component,
           {bucket} AS day,
           count(*) AS n,
           avg(value) AS mean,
           min(value) AS min,
           max(value) AS max,
           stddev_samp(value) AS sd
    FROM observation
    WHERE status <> 'rejected' AND value IS NOT NULL
    GROUP BY patient_id, kind, component, {bucket}
"""


def _env_interval(name: str, default: str) -> str:
    value = os.environ.get(name, default)
    # Interval literals are interpolated into DDL, so accept only "<n> <unit>".
    number, _, unit = value.partition(" ")
    if not number.isdigit() or unit.rstrip("s") not in {"hour", "day", "week", "month", "year"}:
        raise ValueError(f"{name} must look like '7 days', got {value!r}")
    return value


def _timescaledb_available() -> bool:
    bind = op.get_bind()
    if os.environ.get("EGENMON_DISABLE_TIMESCALEDB") == "1":
        return False
    available = bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar()
    if not available:
        return False
    try:
        with bind.begin_nested():
            bind.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except Exception as err:  # e.g. not in shared_preload_libraries
        log.warning("timescaledb is installed but cannot be created (%s); using plain PostgreSQL", err)
        return False
    return True


_CREATE = re.compile(r"CREATE (?:OR REPLACE )?(\w+) (?:IF NOT EXISTS )?(\w+)")


class Step(NamedTuple):
    """One idempotent piece of the schema.

    ``sql`` may run again on a database that already has it (IF NOT EXISTS, OR REPLACE,
    ``if_not_exists => true``); where no such form exists, ``done`` is a query that is
    true once the step has been applied, and the step is then skipped. ``autocommit``
    steps cannot run inside a transaction block (TimescaleDB's continuous aggregate).
    """

    name: str
    sql: str
    done: str | None = None
    autocommit: bool = False


def _block_name(block: str) -> str:
    found = _CREATE.search(block)
    if found is None:
        raise ValueError(f"no CREATE in block {block[:60]!r}")
    return f"{found[1].lower()} {found[2]}"


def _blocks(ddl: str) -> list[Step]:
    """A DDL script as steps, one per blank-line separated block (a table with its indexes)."""
    return [Step(_block_name(b), b.strip()) for b in ddl.split("\n\n") if "CREATE" in b]


def _hypertable_done(table: str, column: str) -> str:
    return (
        "SELECT coalesce(bool_or(" + column + "), false) FROM timescaledb_information.hypertables"
        f" WHERE hypertable_schema = current_schema() AND hypertable_name = '{table}'"
    )


def steps(timescaledb: bool, chunk: str = "7 days", compress_after: str = "30 days") -> list[Step]:
    """Every step of this migration, in order, for the storage found.

    Why a step list: on TimescaleDB the continuous aggregate must be created outside a
    transaction, so whatever ran before it is committed on its own. A failure there (or
    after it) used to leave the tables committed without the ``alembic_version`` row, and
    the rerun then failed on "relation already exists". Every step is idempotent, so a
    rerun after a failure at any step completes the schema. On plain PostgreSQL all steps
    run in one transaction: a failure leaves nothing behind.
    """
    out = _blocks(RELATIONAL) + _blocks(OBSERVATIONS)
    if timescaledb:
        bucket = "time_bucket(interval '1 day', measured_at, 'Europe/Stockholm')"
        out += [
            Step(
                f"hypertable {table}",
                f"SELECT create_hypertable('{table}', 'measured_at',"
                f" chunk_time_interval => interval '{chunk}', if_not_exists => true)",
            )
            for table in ("observation", "reading_raw")
        ]
        out += [
            Step(
                "compress observation",
                """ALTER TABLE observation SET (
                    timescaledb.compress,
                    timescaledb.compress_segmentby = 'patient_id',
                    timescaledb.compress_orderby = 'component, measured_at DESC'
                )""",
                done=_hypertable_done("observation", "compression_enabled"),
            ),
            Step(
                "compression policy observation",
                f"SELECT add_compression_policy('observation', interval '{compress_after}', if_not_exists => true)",
            ),
            Step(
                "compress reading_raw",
                "ALTER TABLE reading_raw SET (timescaledb.compress, timescaledb.compress_segmentby = 'gateway_id')",
                done=_hypertable_done("reading_raw", "compression_enabled"),
            ),
            Step(
                "compression policy reading_raw",
                f"SELECT add_compression_policy('reading_raw', interval '{compress_after}', if_not_exists => true)",
            ),
            Step(
                "continuous aggregate observation_daily",
                "CREATE MATERIALIZED VIEW observation_daily WITH (timescaledb.continuous) AS"
                + DAILY_SELECT.format(bucket=bucket)
                + " WITH NO DATA",
                done="SELECT to_regclass('observation_daily') IS NOT NULL",
                autocommit=True,
            ),
            Step(
                "refresh policy observation_daily",
                """SELECT add_continuous_aggregate_policy('observation_daily',
                    start_offset => interval '40 days', end_offset => interval '1 hour',
                    schedule_interval => interval '15 minutes', if_not_exists => true)""",
                autocommit=True,
            ),
            Step(
                "real-time observation_daily",
                "ALTER MATERIALIZED VIEW observation_daily SET (timescaledb.materialized_only = false)",
                autocommit=True,
            ),
            Step("storage comment", "COMMENT ON TABLE observation IS 'storage: timescaledb'"),
        ]
    else:
        bucket = "(date_trunc('day', measured_at AT TIME ZONE 'Europe/Stockholm') AT TIME ZONE 'Europe/Stockholm')"
        out += [
            Step(
                "brin observation",
                "CREATE INDEX IF NOT EXISTS observation_time_brin ON observation USING brin (measured_at)",
            ),
            Step(
                "brin reading_raw",
                "CREATE INDEX IF NOT EXISTS reading_raw_time_brin ON reading_raw USING brin (measured_at)",
            ),
            Step(
                "view observation_daily",
                "CREATE OR REPLACE VIEW observation_daily AS" + DAILY_SELECT.format(bucket=bucket),
            ),
            Step("storage comment", "COMMENT ON TABLE observation IS 'storage: postgresql'"),
        ]
    return out


def upgrade() -> None:
    chunk = _env_interval("EGENMON_CHUNK_INTERVAL", "7 days")
    compress_after = _env_interval("EGENMON_COMPRESS_AFTER", "30 days")
    timescaledb = _timescaledb_available()
    if timescaledb:
        log.info("TimescaleDB found: observation is a hypertable (chunks %s, compress after %s)", chunk, compress_after)
    else:
        log.info("TimescaleDB not available: observation is a plain table with a BRIN index on time")
    bind = op.get_bind()
    for step in steps(timescaledb, chunk, compress_after):
        if step.done is not None and bind.execute(text(step.done)).scalar():
            log.info("0001: %s already applied", step.name)
            continue
        if step.autocommit:
            with op.get_context().autocommit_block():
                op.execute(step.sql)
        else:
            op.execute(step.sql)


def downgrade() -> None:
    raise NotImplementedError("the initial schema is not reversible; restore from backup instead")
