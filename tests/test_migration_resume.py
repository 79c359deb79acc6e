"""Migration 0001 after a failed attempt: every step idempotent, so the rerun completes.

On TimescaleDB the continuous aggregate runs outside a transaction, so what came before it
is committed even when the migration then fails. These tests build that state on plain
PostgreSQL by committing the first k steps on their own (for every k), and inject a real
failure with an event trigger, then show that ``migrate`` finishes the same schema a clean
run gives.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc

from schema.migrate import MIGRATIONS_DIR, migrate
from tests.fixtures.db import create_test_database, drop_test_database

# A catalog fingerprint of the public schema: relations, columns, constraints, indexes,
# views, functions and triggers, enough to tell a complete schema from a partial one.
FINGERPRINT = """
SELECT 'rel ' || c.relname || ' ' || c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
  || ' ' || coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'con ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public'
UNION ALL
SELECT 'fn ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trg ' || tgname || ' ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'comment ' || obj_description('observation'::regclass, 'pg_class')
ORDER BY 1
"""

# The injected failure: the daily summary's creation (a step on both storages) is refused.
FAIL_DAILY = """
CREATE FUNCTION refuse_daily() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.observation_daily') THEN
        RAISE EXCEPTION 'injected failure creating observation_daily';
    END IF;
END $$;
CREATE EVENT TRIGGER refuse_daily ON ddl_command_end EXECUTE FUNCTION refuse_daily();
"""
UNFAIL_DAILY = "DROP EVENT TRIGGER refuse_daily; DROP FUNCTION refuse_daily()"


def _initial() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0001", MIGRATIONS_DIR / "versions" / "0001_initial.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fingerprint(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(FINGERPRINT).fetchall()
        # Objects of the extensions (btree_gist, TimescaleDB) and the event trigger's own
        # function are not the schema's.
        return [r[0] for r in rows if r[0] != "fn refuse_daily"]


def _version(url: str) -> Any:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def _head() -> str:
    return max(p.name.split("_", 1)[0] for p in Path(MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain PostgreSQL path, also on a server with TimescaleDB."""
    monkeypatch.setenv("EGENMON_DISABLE_TIMESCALEDB", "1")


@pytest.fixture
def empty_url(pg_admin_url: str) -> Iterator[str]:
    url = create_test_database(pg_admin_url, "template0")
    try:
        yield url
    finally:
        drop_test_database(pg_admin_url, url)


def _clean_fingerprint(admin_url: str, *, timescaledb: bool) -> list[str]:
    url = create_test_database(admin_url, "template0")
    try:
        with pytest.MonkeyPatch.context() as mp:
            if not timescaledb:
                mp.setenv("EGENMON_DISABLE_TIMESCALEDB", "1")
            migrate(url)
        return _fingerprint(url)
    finally:
        drop_test_database(admin_url, url)


@pytest.fixture(scope="module")
def clean_fingerprint(pg_admin_url: str) -> list[str]:
    return _clean_fingerprint(pg_admin_url, timescaledb=False)


def _commit_steps(url: str, steps: list[Any]) -> None:
    """Apply ``steps`` one by one, each committed on its own (the worst case of a partial run)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for step in steps:
            done = step.done is not None and conn.execute(step.done).fetchone() == (True,)
            if not done:
                conn.execute(step.sql)


def _steps(*, timescaledb: bool) -> list[Any]:
    return list(_initial().steps(timescaledb))


def test_the_step_list_is_what_a_clean_migration_builds(plain: None, empty_url: str) -> None:
    """Applying the steps by hand gives the schema of 0001 (a guard for the tests below)."""
    steps = _steps(timescaledb=False)
    assert len(steps) >= 20
    _commit_steps(empty_url, steps)
    names = _fingerprint(empty_url)
    for expected in ("rel observation r", "rel care_unit r", "fn audit_log_is_append_only"):
        assert expected in names


@pytest.mark.slow
def test_a_rerun_after_a_failure_at_any_step_completes_the_schema(
    plain: None, pg_admin_url: str, clean_fingerprint: list[str]
) -> None:
    _rerun_after_every_prefix(pg_admin_url, _steps(timescaledb=False), clean_fingerprint)


@pytest.mark.timescaledb
@pytest.mark.slow
def test_on_timescaledb_a_rerun_after_a_failure_at_any_step_completes_the_schema(
    timescaledb_url: str, pg_admin_url: str
) -> None:
    """Including after the continuous aggregate (autocommit) and after its policy."""
    steps = _steps(timescaledb=True)
    assert any(s.autocommit for s in steps)
    _rerun_after_every_prefix(
        pg_admin_url,
        steps,
        _clean_fingerprint(pg_admin_url, timescaledb=True),
        prologue="CREATE EXTENSION IF NOT EXISTS timescaledb",
    )


def _rerun_after_every_prefix(admin_url: str, steps: list[Any], clean: list[str], prologue: str = "") -> None:
    for k in range(1, len(steps) + 1):
        url = create_test_database(admin_url, "template0")
        try:
            if prologue:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(prologue)
            _commit_steps(url, steps[:k])
            migrate(url)
            assert _version(url) == _head(), steps[k - 1].name
            assert _fingerprint(url) == clean, f"after a failure following step {k}: {steps[k - 1].name}"
        finally:
            drop_test_database(admin_url, url)


def test_an_injected_failure_leaves_nothing_on_plain_postgresql_and_the_rerun_succeeds(
    plain: None, empty_url: str, clean_fingerprint: list[str]
) -> None:
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(FAIL_DAILY)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="injected failure"):
        migrate(empty_url)
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT to_regclass('care_unit')").fetchone() == (None,)
    assert _version(empty_url) is None
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(UNFAIL_DAILY)
    migrate(empty_url)
    assert _version(empty_url) == _head()
    assert _fingerprint(empty_url) == clean_fingerprint


def test_the_reported_state_tables_committed_no_version_row_then_a_failing_rerun_then_a_good_one(
    plain: None, empty_url: str, clean_fingerprint: list[str]
) -> None:
    """What TimescaleDB left behind when the aggregate failed: every table committed, no
    alembic_version row. A rerun that fails again changes nothing; the next one completes."""
    steps = _steps(timescaledb=False)
    daily = next(i for i, s in enumerate(steps) if "observation_daily" in s.name)
    _commit_steps(empty_url, steps[:daily])
    with psycopg.connect(empty_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('care_unit') IS NOT NULL").fetchone() == (True,)
        conn.execute(FAIL_DAILY)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="injected failure"):
        migrate(empty_url)
    assert _version(empty_url) is None
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(UNFAIL_DAILY)
    migrate(empty_url)
    assert _version(empty_url) == _head()
    assert _fingerprint(empty_url) == clean_fingerprint
