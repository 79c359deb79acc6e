"""Prometheus metrics of the gateway (served on ``metrics_port`` when set)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.readings_taken = Counter("egenmon_gateway_readings_taken", "Readings stored in the outbox", registry=r)
        self.readings_duplicate = Counter(
            "egenmon_gateway_readings_duplicate", "Resent device records recognised as already taken", registry=r
        )
        self.decode_errors = Counter("egenmon_gateway_decode_errors", "Values that could not be decoded", registry=r)
        self.sessions = Counter("egenmon_gateway_ble_sessions", "BLE sessions by outcome", ["outcome"], registry=r)
        self.batches_acked = Counter("egenmon_gateway_batches_acked", "Batches acknowledged by the broker", registry=r)
        self.feedback_failures = Counter(
            "egenmon_gateway_feedback_failures", "Messages to the patient an output failed to show", registry=r
        )
        self.output_failures = Counter(
            "egenmon_gateway_output_failures",
            "Calls to a patient output (voice, screen, led) that failed",
            ["output"],
            registry=r,
        )
        self.outbox_depth = Gauge("egenmon_gateway_outbox_depth", "Readings waiting for a PUBACK", registry=r)
        self.mqtt_connected = Gauge("egenmon_gateway_mqtt_connected", "1 while connected to the broker", registry=r)

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
