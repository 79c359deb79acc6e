"""Audit records: who read or changed which patient's data, when and from where.

Rows are append-only (a trigger in the schema refuses UPDATE/DELETE/TRUNCATE); the API
offers search to auditors and nothing else.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff


def record(
    conn: psycopg.Connection[Any],
    staff: Staff | None,
    action: str,
    resource: str,
    *,
    patient_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    """``actor`` is the subject recorded when no staff row acts (e.g. "cli", a refused login)."""
    conn.execute(
        """
        INSERT INTO audit_log (staff_id, subject, action, resource, patient_id, remote_addr, reason, detail)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            staff.id if staff else None,
            staff.subject if staff else actor,
            action,
            resource,
            patient_id,
            remote_addr if remote_addr is not None else (staff.remote_addr if staff else None),
            reason,
            Jsonb(detail or {}),
        ),
    )


def record_refusal(
    conn: psycopg.Connection[Any],
    staff: Staff,
    *,
    method: str,
    path: str,
    status: int,
    patient_id: uuid.UUID | None = None,
    alert_id: int | None = None,
    gateway_id: str | None = None,
) -> None:
    """A request the staff member was refused (403/404), e.g. another unit's patient.

    The patient is looked up from whichever id the request named, so ``GET /audit?patient_id=``
    shows who tried to reach a patient outside their units; an id that names nothing leaves
    ``patient_id`` empty (the column references ``patient``).
    """
    action = "read_refused" if method in ("GET", "HEAD") else "write_refused"
    conn.execute(
        """
        INSERT INTO audit_log (staff_id, subject, action, resource, patient_id, remote_addr, reason, detail)
        VALUES (%s, %s, %s, %s,
                coalesce((SELECT id FROM patient WHERE id = %s),
                         (SELECT patient_id FROM alert WHERE id = %s),
                         (SELECT patient_id FROM gateway_assignment WHERE gateway_id = %s AND valid @> now())),
                %s, %s, %s)
        """,
        (
            staff.id,
            staff.subject,
            action,
            path,
            patient_id,
            alert_id,
            gateway_id,
            staff.remote_addr,
            None,
            Jsonb({"method": method, "status": status, "outcome": "refused"}),
        ),
    )
