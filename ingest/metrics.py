"""Prometheus metrics and the health endpoint of one ingest worker."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class Metrics:
    """Every metric of a worker, on a registry of its own (several workers per test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("egenmon_ingest_messages", "MQTT messages received", ["topic"], registry=r)
        self.readings_stored = Counter("egenmon_ingest_readings_stored", "Readings newly stored", registry=r)
        self.rows_stored = Counter(
            "egenmon_ingest_observation_rows", "Observation rows newly stored, by status", ["status"], registry=r
        )
        self.duplicates = Counter(
            "egenmon_ingest_readings_duplicate", "Readings already stored (re-delivery), not stored again", registry=r
        )
        self.dead_letters = Counter(
            "egenmon_ingest_dead_letters", "Dead letters written, by reason", ["reason"], registry=r
        )
        self.commit_seconds = Histogram(
            "egenmon_ingest_commit_seconds", "Time to store and commit one batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_messages = Histogram(
            "egenmon_ingest_batch_messages",
            "Messages per transaction",
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000),
            registry=r,
        )
        self.lag_seconds = Histogram(
            "egenmon_ingest_lag_seconds",
            "Commit time minus the message's sent_at (gateway clock)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "egenmon_ingest_queue_seconds",
            "Commit time minus the time ingest received the message",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("egenmon_ingest_queue_depth", "Messages received, not yet committed", registry=r)
        self.db_errors = Counter("egenmon_ingest_db_errors", "Failed attempts to store a batch", ["kind"], registry=r)
        self.mqtt_connected = Gauge("egenmon_ingest_mqtt_connected", "1 while connected to the broker", registry=r)
        self.db_connected = Gauge("egenmon_ingest_db_connected", "1 while connected to PostgreSQL", registry=r)
        self.write_path = Counter(
            "egenmon_ingest_batches_written",
            "Batches with readings, by how they were written (direct COPY, or staged because of duplicates)",
            ["path"],
            registry=r,
        )
        self.acks = Counter("egenmon_ingest_acks", "PUBACKs sent after commit", registry=r)
        self.dead_letters_pruned = Counter(
            "egenmon_ingest_dead_letters_pruned", "Dead letters deleted after the retention period", registry=r
        )


class HealthServer:
    """/metrics for Prometheus and /healthz (200 when connected to broker and database)."""

    def __init__(self, metrics: Metrics, health: Callable[[], dict[str, bool]], host: str, port: int) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body = generate_latest(registry)
                    self._reply(200, CONTENT_TYPE_LATEST, body)
                elif self.path.startswith("/healthz"):
                    state = health()
                    code = 200 if all(state.values()) else 503
                    self._reply(code, "application/json", json.dumps(state).encode())
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _reply(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the service log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingest-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics and health on port %d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
