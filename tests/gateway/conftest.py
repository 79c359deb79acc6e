from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from ingest.service import IngestService
from ingest.settings import IngestSettings
from simulators.ble.process_radio import reset_radio
from simulators.ble.radio import VirtualRadio
from tests.ingest.helpers import purge_session


@pytest.fixture
def radio() -> Iterator[VirtualRadio]:
    """A fresh virtual radio for the test (the process's default radio)."""
    r = reset_radio()
    yield r
    r.clear()


@pytest.fixture
def ingest_worker(database_url: str, mqtt_url: str) -> Iterator[Callable[..., IngestService]]:
    """The real ingest service (in-process) between the broker and the test's database."""
    started: list[IngestService] = []

    def start(broker_url: str | None = None) -> IngestService:
        settings = IngestSettings(
            database_url=database_url,
            mqtt_url=broker_url or mqtt_url,
            client_id=f"ingest-gw-test-{uuid.uuid4().hex[:8]}",
            metrics_port=0,
        )
        service = IngestService(settings)
        service.start()
        started.append(service)
        assert service.wait_ready(), "ingest did not subscribe"
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()
            purge_session(service.settings.mqtt_url, service.settings.client_id)
