"""Audit-log search for auditors (read only: the API offers no change or delete)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from clinic_api import audit, queries
from clinic_api.deps import AuditorStaff, DbConn

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", summary="Search the audit log (auditor)")
def search(
    *,
    conn: DbConn,
    staff: AuditorStaff,
    patient_id: uuid.UUID | None = None,
    staff_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if patient_id is not None:
        # A list read names its patients in detail.patients rather than patient_id.
        where.append("(l.patient_id = %(patient)s OR l.detail->'patients' ? %(patient_s)s)")
        params.update(patient=patient_id, patient_s=str(patient_id))
    if staff_id is not None:
        where.append("l.staff_id = %(staff)s")
        params["staff"] = staff_id
    if action:
        where.append("l.action = %(action)s")
        params["action"] = action
    if start is not None:
        where.append("l.at >= %(start)s")
        params["start"] = start
    if end is not None:
        where.append("l.at < %(end)s")
        params["end"] = end
    rows = queries._rows(
        conn,
        f"""SELECT l.id, l.at, l.staff_id, l.subject, s.display_name AS staff_name, l.action, l.resource,
                   l.patient_id, l.remote_addr, l.reason, l.detail
            FROM audit_log l LEFT JOIN staff s ON s.id = l.staff_id
            WHERE {" AND ".join(where)} ORDER BY l.at DESC, l.id DESC LIMIT %(limit)s""",
        params,
    )
    # Searching the log is itself logged.
    audit.record(conn, staff, "search", "audit_log", detail={"patient_id": str(patient_id) if patient_id else None})
    return rows
