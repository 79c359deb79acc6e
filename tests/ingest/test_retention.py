"""Dead-letter retention (batched deletes, in the worker and as a command) and the 0004 backfill."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from ingest.retention import prune_dead_letters
from ingest.service import IngestService
from ingest.settings import IngestSettings
from schema.migrate import migrate
from tests.fixtures.db import create_test_database, drop_test_database
from tests.ingest.helpers import count, wait_until

ROOT = Path(__file__).resolve().parents[2]
Db = psycopg.Connection[Any]


def _dead_letters(db: Db, ages_days: list[float]) -> None:
    now = datetime.now(UTC)
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letter (received_at, topic, reason, payload) VALUES (%s, 't', 'bad_json', 'x')",
            [(now - timedelta(days=d),) for d in ages_days],
        )


def test_prune_deletes_only_rows_older_than_the_retention_in_batches(db: Db) -> None:
    _dead_letters(db, [31] * 25 + [40, 400] + [29.9] * 3 + [0])
    assert prune_dead_letters(db, 30, batch_rows=4) == 27
    assert count(db, "SELECT count(*) FROM dead_letter") == 4
    assert count(db, "SELECT count(*) FROM dead_letter WHERE received_at < now() - interval '30 days'") == 0
    assert prune_dead_letters(db, 0) == 0  # 0 keeps everything
    assert prune_dead_letters(db, 30) == 0


def test_the_worker_prunes_periodically(db: Db, database_url: str, mqtt_url: str) -> None:
    _dead_letters(db, [10, 10, 1])
    settings = IngestSettings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        client_id=f"ingest-prune-{uuid.uuid4().hex[:8]}",
        metrics_port=0,
        session_expiry_s=0,
        dead_letter_retention_days=5,
        dead_letter_prune_interval_s=0.2,
    )
    service = IngestService(settings)
    service.start()
    try:
        wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter") == 1)
        wait_until(lambda: service.metrics.registry.get_sample_value("egenmon_ingest_dead_letters_pruned_total") == 2)
    finally:
        service.stop()


def test_prune_command(db: Db, database_url: str) -> None:
    _dead_letters(db, [8, 8, 8, 2])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ingest", "prune-dead-letters", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    default = run()  # 30 days: nothing that old
    assert default.returncode == 0, default.stderr
    assert "0 dead letters older than 30 days deleted" in default.stdout
    week = run("--days", "7")
    assert week.returncode == 0, week.stderr
    assert "3 dead letters older than 7 days deleted" in week.stdout
    assert count(db, "SELECT count(*) FROM dead_letter") == 1


def test_migration_0004_keys_each_stored_reading_by_its_first_copy(pg_admin_url: str) -> None:
    url = create_test_database(pg_admin_url, "template0")
    try:
        migrate(url, "0002")
        rid, other = uuid.uuid4(), uuid.uuid4()
        t0 = datetime(2026, 11, 1, tzinfo=UTC)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = [
                # One reading stored twice before the key existed: unset clock first, corrected later.
                (rid, "systolic", t0, t0 + timedelta(minutes=1)),
                (rid, "diastolic", t0, t0 + timedelta(minutes=1)),
                (rid, "systolic", t0 + timedelta(hours=2), t0 + timedelta(hours=3)),
                (other, "weight", t0 + timedelta(days=1), t0 + timedelta(days=1)),
            ]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
                    " device_address, kind, value, unit, received_at, ingested_at)"
                    " VALUES (%s, %s, %s, gen_random_uuid(), 'gw-old-1', 'AA', 'blood_pressure', 1, 'x', %s, %s)",
                    [(r, c, m, m, i) for r, c, m, i in rows],
                )
        migrate(url)
        with psycopg.connect(url) as conn:
            keys = conn.execute("SELECT reading_id, gateway_id, measured_at FROM reading_key").fetchall()
            cols = conn.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'dead_letter'"
                " AND column_name IN ('payload_bytes', 'payload_sha256')"
            ).fetchone()
        assert sorted(keys) == sorted([(rid, "gw-old-1", t0), (other, "gw-old-1", t0 + timedelta(days=1))])
        assert cols == (2,)
    finally:
        drop_test_database(pg_admin_url, url)
