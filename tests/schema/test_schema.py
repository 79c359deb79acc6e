"""The schema package: its CLI on an empty database, the table names, the NOTIFY contract, packaging."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from setuptools import find_packages

from schema import tables
from schema.migrate import MIGRATIONS_DIR, current_revision
from schema.notify import NOTIFY_MAX_BYTES, decode_new_readings, encode_new_readings
from tests.fixtures.db import create_test_database, drop_test_database

ROOT = Path(__file__).resolve().parents[2]


def _schema_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schema", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _head_revision() -> str:
    """The revision no other migration names as its down_revision."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"):
        values = {
            t.id: n.value
            for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
        }
        revisions[str(values["revision"].value)] = values["down_revision"].value  # type: ignore[attr-defined]
    (head,) = set(revisions) - {r for r in revisions.values() if r}
    return head


def test_upgrade_on_an_empty_database_creates_every_table_and_current_names_the_head(pg_admin_url: str) -> None:
    url = create_test_database(pg_admin_url, "template0")
    try:
        assert _schema_cli("current", url=url).stdout.strip() == "none"
        up = _schema_cli("upgrade", url=url)
        assert up.returncode == 0, up.stderr
        assert "schema up to date" in up.stdout
        assert _schema_cli("current", url=url).stdout.strip() == _head_revision() == current_revision(url)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        base = {name for name, kind in rows if kind == "BASE TABLE"} - {"alembic_version"}
        assert base == set(tables.TABLES)
        views = {name for name, kind in rows if kind == "VIEW"}
        assert set(tables.VIEWS) <= views | {tables.OBSERVATION_DAILY}  # a continuous aggregate on TimescaleDB
    finally:
        drop_test_database(pg_admin_url, url)


def test_upgrade_without_a_database_url_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "EGENMON_INGEST_DATABASE_URL"}}
    out = subprocess.run(
        [sys.executable, "-m", "schema", "upgrade"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "DATABASE_URL is not set" in out.stderr


def test_table_constants_are_distinct_and_named_in_the_migrations() -> None:
    assert len(set(tables.TABLES)) == len(tables.TABLES)
    sql = "\n".join(p.read_text() for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    for name in tables.TABLES:
        assert f"CREATE TABLE IF NOT EXISTS {name} (" in sql or f"CREATE TABLE {name} (" in sql, name
    assert set(tables.HYPERTABLES) <= set(tables.TABLES)


def test_a_long_patient_list_is_split_below_the_limit_and_each_payload_decodes() -> None:
    patients = [uuid.uuid4() for _ in range(1000)]
    payloads = encode_new_readings(patients)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= NOTIFY_MAX_BYTES for p in payloads)
    decoded = [pid for p in payloads for pid in decode_new_readings(p)]
    assert decoded == sorted(str(p) for p in patients)
    assert json.loads(payloads[0]).keys() == {"patients"}


@settings(deadline=None, max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=200), max_size=300))
def test_encode_then_decode_gives_the_distinct_ids_back(ids: list[str]) -> None:
    payloads = encode_new_readings(ids)
    assert all(len(p.encode()) <= NOTIFY_MAX_BYTES for p in payloads)
    assert sorted(pid for p in payloads for pid in decode_new_readings(p)) == sorted(set(ids))


def test_nothing_to_name_sends_nothing() -> None:
    assert encode_new_readings([]) == []


@pytest.mark.parametrize("payload", ["not json", "[]", "{}", '{"patients": "a"}', '"x"'])
def test_a_malformed_payload_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - every malformation is the one ValueError
        decode_new_readings(payload)


def test_the_distribution_carries_the_migrations() -> None:
    """The wheel packages every migration (a package each folder) and the Alembic template."""
    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(ROOT), include=setuptools_cfg["packages"]["find"]["include"]))
    assert {"schema", "schema.migrations", "schema.migrations.versions"} <= found
    assert "*.mako" in setuptools_cfg["package-data"]["*"]
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert not (ROOT / "ingest" / "migrations").exists()
