"""Applying the database schema: Alembic to the newest revision (``python -m schema upgrade``)."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlalchemy_url(database_url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def migrate(database_url: str, revision: str = "head") -> str:
    """Upgrade the schema and return the storage mode ("timescaledb" or "postgresql")."""
    command.upgrade(alembic_config(database_url), revision)
    mode = storage_mode(database_url)
    log.info("schema at %s, storage: %s", revision, mode)
    return mode


def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() in (None, (None,)):
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def storage_mode(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT obj_description('observation'::regclass, 'pg_class')").fetchone()
    comment = row[0] if row and row[0] else ""
    return comment.removeprefix("storage: ") or "unknown"
