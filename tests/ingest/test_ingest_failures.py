"""Failure injection with ingest as a real subprocess: SIGKILL, PostgreSQL restart, two workers."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.localstack import LocalMosquitto, LocalPostgres
from schema.migrate import migrate
from tests.ingest.helpers import (
    Publisher,
    purge_session,
    wait_until,
)
from tests.ingest.processes import (
    IngestProcess,
    assert_exactly_once,
    publish_and_await,
    reading_stream,
    seed_gateway,
    stored_count,
)


def _publish_paced(url: str, topic: str, payloads: list[bytes], per_second: float) -> threading.Thread:
    """Publish in the background at a steady pace, so failures land in the middle of the stream."""

    def run() -> None:
        pub = Publisher(url)
        try:
            start = time.monotonic()
            for i, chunk_start in enumerate(range(0, len(payloads), 10)):
                pub.publish(topic, payloads[chunk_start : chunk_start + 10])
                pause = start + (i + 1) * 10 / per_second - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        finally:
            pub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = seed_gateway(database_url)
    payloads, readings = reading_stream(10_000, 10, seed.gateway_id, "SN-kill")
    first = ingest_processes(database_url, broker.url, "ingest-kill")
    first.wait_ready()
    publisher = _publish_paced(broker.url, seed.topic, payloads, per_second=400)
    wait_until(lambda: stored_count(database_url) >= 2_000, timeout_s=60)
    first.kill()
    stored_at_kill = stored_count(database_url)
    assert stored_at_kill < 10_000, "the stream ended before the kill"
    time.sleep(0.5)
    second = ingest_processes(database_url, broker.url, "ingest-kill")  # same client id: same session
    second.wait_ready()
    publisher.join(timeout=120)
    wait_until(lambda: stored_count(database_url) == 10_000, timeout_s=60)
    time.sleep(0.3)  # late re-deliveries must not add anything
    with psycopg.connect(database_url) as conn:
        assert_exactly_once(conn, readings)


@pytest.fixture
def restartable_pg(pg_server: LocalPostgres | None, database_url: str) -> Iterator[tuple[str, LocalPostgres]]:
    """A database on a server the test may restart: the session's, or one of its own."""
    if pg_server is not None:
        yield database_url, pg_server
        return
    base = Path(tempfile.mkdtemp(prefix="egenmon-pg-"))
    pg = LocalPostgres(base, durable=False)
    pg.start()
    try:
        migrate(pg.url)
        yield pg.url, pg
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_postgres_restart_mid_stream_loses_nothing(
    restartable_pg: tuple[str, LocalPostgres],
    make_mosquitto: Callable[..., LocalMosquitto],
    ingest_processes: Callable[..., IngestProcess],
) -> None:
    url, pg = restartable_pg
    broker = make_mosquitto()
    seed = seed_gateway(url)
    payloads, readings = reading_stream(3_000, 5, seed.gateway_id, "SN-pg")
    worker = ingest_processes(url, broker.url)
    worker.wait_ready()
    publisher = _publish_paced(broker.url, seed.topic, payloads, per_second=300)
    wait_until(lambda: stored_count(url) >= 300, timeout_s=60)
    assert stored_count(url) < 3_000, "the stream ended before the restart"
    pg.restart()
    publisher.join(timeout=120)
    wait_until(lambda: stored_count(url) == 3_000, timeout_s=60)
    assert worker.metric("egenmon_ingest_db_errors_total") >= 1, "the restart was not noticed"
    with psycopg.connect(url) as conn:
        assert_exactly_once(conn, readings)


@pytest.mark.slow
def test_two_workers_share_the_subscription_without_duplicates(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = seed_gateway(database_url)
    payloads, readings = reading_stream(4_000, 4, seed.gateway_id, "SN-two")
    workers = [ingest_processes(database_url, broker.url) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    publish_and_await(database_url, broker.url, seed.topic, payloads, readings)
    stored = [w.metric("egenmon_ingest_readings_stored_total") for w in workers]
    assert sum(stored) == 4_000
    assert all(n > 0 for n in stored), f"one worker did nothing: {stored}"
    assert sum(w.metric("egenmon_ingest_readings_duplicate_total") for w in workers) == 0
    for w in workers:
        w.stop()
        purge_session(broker.url, w.client_id)


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = seed_gateway(database_url)
    payloads, readings = reading_stream(4_000, 5, seed.gateway_id, "SN-broker")
    worker = ingest_processes(database_url, broker.url)
    worker.wait_ready()
    pub = Publisher(broker.url)
    try:
        pub.publish(seed.topic, payloads[:400])
    finally:
        pub.close()
    # Restart while ingest still works through the first half: its un-acked messages
    # survive in the broker's persisted session and are re-delivered after reconnecting.
    broker.restart()
    worker.wait_ready()
    pub = Publisher(broker.url)
    try:
        pub.publish(seed.topic, payloads[400:])
    finally:
        pub.close()
    wait_until(lambda: stored_count(database_url) == 4_000, timeout_s=60)
    time.sleep(0.3)
    with psycopg.connect(database_url) as conn:
        assert_exactly_once(conn, readings)
