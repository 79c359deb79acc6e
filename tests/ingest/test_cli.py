"""The CLI: `python -m ingest migrate` on an empty database; structured log lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from ingest.logs import JsonFormatter
from tests.fixtures.db import create_test_database, drop_test_database

ROOT = Path(__file__).resolve().parents[2]


def test_migrate_command_creates_the_schema(pg_admin_url: str) -> None:
    url = create_test_database(pg_admin_url, "template0")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ingest", "migrate"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "schema up to date" in result.stdout
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT to_regclass('observation'), to_regclass('dead_letter')").fetchone()
        assert row == ("observation", "dead_letter")
    finally:
        drop_test_database(pg_admin_url, url)


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("ingest.service", logging.WARNING, __file__, 1, "stored %d", (3,), None)
    record.reason = "bad_json"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "stored 3"
    assert line["level"] == "warning"
    assert line["logger"] == "ingest.service"
    assert line["reason"] == "bad_json"
    assert line["ts"].endswith("+00:00")
