"""Rows for database tests: a care unit, patients with care plans, observations."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

# A care plan that sends level 1 lows (D1, D4 medium) to staff instead of the patient: the
# lifecycle tests use a single capillary 3.5 as their simplest staff alert.
STAFF_LOWS: dict[str, dict[str, Any]] = {"routing": {"D1": "staff", "D4": "staff"}}


def make_patient(
    db: psycopg.Connection[Any],
    conditions: list[str],
    *,
    pseudonym: str | None = None,
    thresholds: dict[str, dict[str, Any]] | None = None,
    schedule: dict[str, float] | None = None,
    dry_weight_kg: float | None = None,
    personal_best_pef: float | None = None,
) -> str:
    unit = db.execute(
        "INSERT INTO care_unit (code, name) VALUES ('u1', 'Enhet 1') "
        "ON CONFLICT (code) DO UPDATE SET name = excluded.name RETURNING id"
    ).fetchone()
    assert unit
    pid = str(uuid.uuid4())
    db.execute(
        "INSERT INTO patient (id, pseudonym, display_name, birth_year, unit_id) "
        "VALUES (%s, %s, 'Test Testsson', 1950, %s)",
        (pid, pseudonym or "P-" + pid[:8], unit[0]),
    )
    db.execute(
        # Enrolled long before the tests' fixed NOW: gap rules count from the first care plan.
        "INSERT INTO care_plan (patient_id, version, valid_from, conditions, thresholds, schedule, dry_weight_kg, "
        "personal_best_pef) "
        "VALUES (%s, 1, '2020-01-01T00:00:00Z', %s, %s, %s, %s, %s)",
        (pid, conditions, json.dumps(thresholds or {}), json.dumps(schedule or {}), dry_weight_kg, personal_best_pef),
    )
    return pid


def add_observation(
    db: psycopg.Connection[Any],
    patient_id: str,
    kind: str,
    component: str,
    at: float,
    value: float | None,
    *,
    unit: str = "mmol/L",
    censored: str | None = None,
    status: str = "valid",
) -> None:
    db.execute(
        """
        INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address, kind,
                                 value, unit, censored, status, received_at)
        VALUES (%s, %s, %s, %s, 'gw-test-1', 'AA:BB:CC:DD:EE:FF', %s, %s, %s, %s, %s, %s)
        """,
        (
            str(uuid.uuid4()),
            component,
            datetime.fromtimestamp(at, UTC),
            patient_id,
            kind,
            value,
            unit,
            censored,
            status,
            datetime.fromtimestamp(at, UTC),
        ),
    )


# The state a staff action in clinic_api (queries.alert_action, the only implementation)
# leaves behind, for engine tests that need an alert acknowledged, snoozed or resolved.
def staff_acknowledges(db: psycopg.Connection[Any], alert_id: int, at: datetime | None = None) -> None:
    at = at or datetime.now(UTC)
    db.execute(
        "UPDATE alert SET status = 'acknowledged', acknowledged_at = %s, snoozed_until = NULL, updated_at = %s "
        "WHERE id = %s",
        (at, at, alert_id),
    )
    db.execute("INSERT INTO alert_event (alert_id, event, at) VALUES (%s, 'acknowledged', %s)", (alert_id, at))


def staff_snoozes(db: psycopg.Connection[Any], alert_id: int, until: datetime, at: datetime) -> None:
    db.execute(
        "UPDATE alert SET status = 'snoozed', snoozed_until = %s, updated_at = %s WHERE id = %s", (until, at, alert_id)
    )
    db.execute(
        "INSERT INTO alert_event (alert_id, event, at, details) VALUES (%s, 'snoozed', %s, %s)",
        (alert_id, at, json.dumps({"until": until.isoformat()})),
    )


def staff_resolves(db: psycopg.Connection[Any], alert_id: int, reason: str, at: datetime) -> None:
    db.execute(
        "UPDATE alert SET status = 'resolved', resolved_at = %s, resolution_reason = %s, snoozed_until = NULL, "
        "updated_at = %s WHERE id = %s",
        (at, reason, at, alert_id),
    )
    db.execute(
        "INSERT INTO alert_event (alert_id, event, at, details) VALUES (%s, 'resolved', %s, %s)",
        (alert_id, at, json.dumps({"reason": reason})),
    )
