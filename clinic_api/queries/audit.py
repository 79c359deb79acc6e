"""The audit log's rows: writing one (a read, a change, a refusal) and the auditors' search.

Rows are append-only (a trigger in the schema refuses UPDATE/DELETE/TRUNCATE). ``clinic_api.audit``
is the name callers use; this module is where its SQL lives.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff
from clinic_api.queries._db import _rows


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


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """One audit-log search: the API's query parameters and the auditor page's form."""

    patient_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    action: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def detail(self) -> dict[str, str | None]:
        """The search as recorded in the auditor's own audit row."""
        return {
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "staff_id": str(self.staff_id) if self.staff_id else None,
            "action": self.action,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def search(conn: psycopg.Connection[Any], f: AuditFilter, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Matching rows, newest first, with the staff member's name and the patient's pseudonym."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if f.patient_id is not None:
        # A list read names its patients in detail.patients rather than patient_id.
        where.append("(l.patient_id = %(patient)s OR l.detail->'patients' ? %(patient_s)s)")
        params.update(patient=f.patient_id, patient_s=str(f.patient_id))
    if f.staff_id is not None:
        where.append("l.staff_id = %(staff)s")
        params["staff"] = f.staff_id
    if f.action:
        where.append("l.action = %(action)s")
        params["action"] = f.action
    if f.start is not None:
        where.append("l.at >= %(start)s")
        params["start"] = f.start
    if f.end is not None:
        where.append("l.at < %(end)s")
        params["end"] = f.end
    return _rows(
        conn,
        f"""SELECT l.id, l.at, l.staff_id, l.subject, s.display_name AS staff_name, l.action, l.resource,
                       l.patient_id, p.pseudonym, l.remote_addr, l.reason, l.detail
                FROM audit_log l LEFT JOIN staff s ON s.id = l.staff_id LEFT JOIN patient p ON p.id = l.patient_id
                WHERE {" AND ".join(where)} ORDER BY l.at DESC, l.id DESC LIMIT %(limit)s OFFSET %(offset)s""",
        params,
    )


def patient_by_pseudonym(conn: psycopg.Connection[Any], pseudonym: str) -> uuid.UUID | None:
    """Any unit's patient (auditors search the whole log)."""
    row = conn.execute("SELECT id FROM patient WHERE pseudonym = %s", (pseudonym.strip().upper(),)).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))
