"""Fixtures of the ingest tests: in-process workers on the session broker, worker subprocesses."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.ingest.helpers import Seed, purge_session, seed_patient
from tests.ingest.processes import IngestProcess


@pytest.fixture
def start_ingest(database_url: str, mqtt_url: str) -> Iterator[Callable[..., IngestService]]:
    """Start in-process ingest workers (stopped, and their sessions ended, afterwards)."""
    # Workers on the session broker, whose sessions must end with the test.
    started: list[tuple[IngestService, str | None]] = []

    def start(*, db_url: str | None = None, broker_url: str | None = None, **overrides: Any) -> IngestService:
        settings = IngestSettings(
            database_url=db_url or database_url,
            mqtt_url=broker_url or mqtt_url,
            client_id=overrides.pop("client_id", f"ingest-test-{uuid.uuid4().hex[:8]}"),
            metrics_port=0,
            **overrides,
        )
        service = IngestService(settings)
        service.start()
        # A broker of the test's own goes away with its sessions; no purge needed.
        started.append((service, None if broker_url else settings.mqtt_url))
        assert service.wait_ready(), "ingest did not subscribe"
        return service

    try:
        yield start
    finally:
        for service, url in started:
            service.stop()
            if url is not None:
                purge_session(url, service.settings.client_id)


@pytest.fixture
def seeded(db: psycopg.Connection[Any]) -> Seed:
    return seed_patient(db)


@pytest.fixture
def ingest_processes(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    procs: list[IngestProcess] = []

    def start(database_url: str, mqtt_url: str, client_id: str | None = None, **kwargs: Any) -> IngestProcess:
        p = IngestProcess(
            database_url, mqtt_url, client_id or f"ingest-{uuid.uuid4().hex[:8]}", tmp_path / "ingest.log", **kwargs
        )
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            p.stop()
        log = tmp_path / "ingest.log"
        if log.exists():
            sys.stderr.write(log.read_text()[-5000:])
