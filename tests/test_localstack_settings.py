"""The local stack's PostgreSQL settings when it preloads TimescaleDB."""

from __future__ import annotations

import psycopg
import pytest

from deploy.localstack import LocalPostgres, timescaledb_settings
from tests.fixtures.db import timescaledb_available


def _parse(lines: list[str]) -> dict[str, str]:
    return {k.strip(): v.strip().strip("'") for k, v in (line.split("=", 1) for line in lines)}


def test_timescaledb_settings_leave_room_for_its_workers_and_parallel_query() -> None:
    conf = _parse(timescaledb_settings(background_workers=20))
    assert conf["shared_preload_libraries"] == "timescaledb"
    workers = int(conf["timescaledb.max_background_workers"])
    assert workers == 20
    # The launcher takes a worker slot of its own besides the schedulers and jobs.
    assert int(conf["max_worker_processes"]) >= workers + int(conf["max_parallel_workers"]) + 1


@pytest.mark.timescaledb
def test_the_preloading_cluster_runs_with_the_worker_settings(pg_server: LocalPostgres | None) -> None:
    if pg_server is None or not timescaledb_available(pg_server.url):
        pytest.skip("needs the harness's own cluster with TimescaleDB preloaded")
    expected = _parse(timescaledb_settings())
    with psycopg.connect(pg_server.url) as conn:
        for name in ("max_worker_processes", "timescaledb.max_background_workers", "max_parallel_workers"):
            row = conn.execute(f"SHOW {name}").fetchone()
            assert row == (expected[name],), name
