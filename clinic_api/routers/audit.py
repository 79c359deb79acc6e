"""Audit-log search for auditors (read only: the API offers no change or delete)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from clinic_api import audit
from clinic_api.deps import AuditorStaff, DbConn
from clinic_api.schemas import AuditRow, documented

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", **documented(list[AuditRow]), summary="Search the audit log (auditor)")
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
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    f = audit.AuditFilter(patient_id=patient_id, staff_id=staff_id, action=action, start=start, end=end)
    rows = audit.search(conn, f, limit=limit, offset=offset)
    # Searching the log is itself logged.
    audit.record(conn, staff, "search", "audit_log", detail=f.detail())
    return rows
