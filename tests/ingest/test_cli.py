"""The CLI: `python -m ingest migrate` on an empty database; structured log lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

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
