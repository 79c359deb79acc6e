"""The harness copies a template while something is connected to it (as TimescaleDB's
background scheduler is, on a server that preloads it): the copy still succeeds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures.db import close_template, create_test_database, drop_test_database


@pytest.fixture
def template_url(pg_admin_url: str) -> Iterator[str]:
    url = create_test_database(pg_admin_url, "template0")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (note text); INSERT INTO marker VALUES ('from the template')")
    try:
        yield url
    finally:
        drop_test_database(pg_admin_url, url)


def test_a_template_with_sessions_on_it_is_still_copied(pg_admin_url: str, template_url: str) -> None:
    template = template_url.rsplit("/", 1)[1]
    # One session idle in a transaction, one busy in a statement, both connected before the
    # template was closed (a scheduler that connected early).
    idle = psycopg.connect(template_url)
    idle.execute("SELECT count(*) FROM marker")
    busy = psycopg.connect(template_url, autocommit=True)
    errors: list[BaseException] = []

    def sleep() -> None:
        try:
            busy.execute("SELECT pg_sleep(60)")
        except psycopg.OperationalError as err:
            errors.append(err)

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    try:
        close_template(pg_admin_url, template)
        start = time.perf_counter()
        copy = create_test_database(pg_admin_url, template)
        elapsed = time.perf_counter() - start
        sleeper.join(timeout=10)
        with psycopg.connect(copy) as conn:
            assert conn.execute("SELECT note FROM marker").fetchall() == [("from the template",)]
        drop_test_database(pg_admin_url, copy)
        # The sessions were ended rather than waited for: PostgreSQL itself waits 5 s for
        # other sessions before refusing, so a copy in well under that did not wait.
        assert elapsed < 4.0
        assert errors
        assert not sleeper.is_alive()
        with pytest.raises(psycopg.OperationalError):
            idle.execute("SELECT 1")
        # And no new session can reach the template.
        with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
            psycopg.connect(template_url)
    finally:
        idle.close()
        busy.close()


def test_the_session_template_is_closed_and_copies_repeatedly(pg_admin_url: str, template_database: str) -> None:
    with psycopg.connect(pg_admin_url.rsplit("/", 1)[0] + "/postgres") as conn:
        row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (template_database,)).fetchone()
    assert row == (False,)
    copies = [create_test_database(pg_admin_url, template_database) for _ in range(3)]
    try:
        for url in copies:
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT to_regclass('observation') IS NOT NULL").fetchone() == (True,)
    finally:
        for url in copies:
            drop_test_database(pg_admin_url, url)
