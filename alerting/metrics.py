"""Prometheus metrics of the alerting service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

_thread = threading.local()


@contextmanager
def muted() -> Iterator[None]:
    """Within this block (on this thread) findings and alert transitions are not counted:
    a threshold replay runs the lifecycle on shadow tables, and its alerts are not live ones."""
    before = getattr(_thread, "muted", False)
    _thread.muted = True
    try:
        yield
    finally:
        _thread.muted = before


def live() -> bool:
    """False inside ``muted()``."""
    return not getattr(_thread, "muted", False)


EVALUATIONS = Counter("egenmon_alerting_evaluations_total", "Evaluations run", ["trigger"])
EVALUATED_PATIENTS = Counter("egenmon_alerting_evaluated_patients_total", "Patients evaluated", ["trigger"])
EVALUATION_SECONDS = Histogram(
    "egenmon_alerting_evaluation_seconds",
    "Load + evaluate + lifecycle time of one evaluation",
    ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SWEEP_LOAD_SECONDS = Histogram(
    "egenmon_alerting_sweep_load_seconds",
    "Loading the sweep's region (care plans and the window's observations) into arrays",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SWEEP_LOADS = Counter(
    "egenmon_alerting_sweep_loads_total",
    "Sweep region loads: full (the whole window read) or incremental (rows since the last read)",
    ["kind"],
)
FINDINGS = Counter("egenmon_alerting_findings_total", "Rule findings", ["rule", "severity"])
ALERTS = Counter("egenmon_alerting_alert_transitions_total", "Alert lifecycle transitions", ["transition"])
OPEN_ALERTS = Gauge("egenmon_alerting_open_alerts", "Non-resolved alerts by severity", ["severity"])
NOTIFY_LAG = Histogram(
    "egenmon_alerting_notify_to_alert_seconds",
    "From receiving a new-readings notification to the evaluation's commit",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
ERRORS = Counter("egenmon_alerting_errors_total", "Evaluation errors", ["stage"])
LAST_SWEEP = Gauge("egenmon_alerting_last_sweep_timestamp_seconds", "When the last complete sweep finished (health)")
LISTENING = Gauge("egenmon_alerting_listening", "1 while LISTENing for new-readings notifications (health)")
PATIENT_MESSAGES = Counter(
    "egenmon_alerting_patient_messages_total", "Messages to patients: sent, delivered, seen, expired", ["state"]
)
TRIAGE_GAPS = Counter("egenmon_alerting_triage_gaps_total", "Missing-data gaps classified, by cause", ["cause"])
TRIAGE_MESSAGES = Counter("egenmon_alerting_triage_messages_total", "Patient messages queued by triage", ["level"])
STAFF_ALERTS = Counter(
    "egenmon_alerting_staff_alerts_total", "Alerts opened in the monitoring team's queue, by event type", ["event_type"]
)
REPLAYS = Counter(
    "egenmon_alerting_replays_total", "Threshold replay requests finished, by outcome (done, failed)", ["outcome"]
)
REPLAY_SECONDS = Histogram(
    "egenmon_alerting_replay_seconds",
    "Time to run one threshold replay request",
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
GATEWAY_CONFIGS = Counter("egenmon_alerting_gateway_configs_total", "Retained gateway configs published (PUBACK)")
RECEIPTS = Counter("egenmon_alerting_receipts_total", "Measurement receipts queued", ["kind"])
