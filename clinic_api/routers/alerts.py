"""Alert queue and the staff actions on an alert."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from clinic_api import audit, queries
from clinic_api.deps import ClinicalStaff, DbConn
from clinic_api.jsonresp import json_response
from clinic_api.models import AlertStatus, CommentIn, RequiredCommentIn, SeverityName, SnoozeIn
from device_profiles.vocabulary import Condition

router = APIRouter(prefix="/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", summary="Alert queue, most severe first, then oldest")
def list_alerts(
    *,
    conn: DbConn,
    staff: ClinicalStaff,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    severity: Annotated[list[SeverityName] | None, Query()] = None,
    unit: uuid.UUID | None = None,
    condition: Condition | None = None,
    patient_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    route: Annotated[
        Literal["staff", "technical", "patient", "record"],
        Query(description="who must act: the clinical queue (staff), support (technical), patient, record"),
    ] = "staff",
) -> Response:
    if patient_id is not None:
        queries.patient_for(conn, staff, patient_id)
    rows = queries.alert_queue(
        conn,
        staff,
        statuses=list(status or ["open"]),
        unit=unit,
        severities=list(severity) if severity else None,
        condition=str(condition) if condition else None,
        patient_id=patient_id,
        limit=limit,
        route=route,
    )
    audit.record(
        conn,
        staff,
        "read",
        "alert_queue",
        patient_id=patient_id,
        detail={"patients": sorted({str(r["patient_id"]) for r in rows}), "count": len(rows)},
    )
    return json_response(rows)


@router.get("/{alert_id}", summary="One alert with its evidence and events")
def get_alert(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId) -> dict[str, Any]:
    row = queries.alert_for(conn, staff, alert_id)
    row["events"] = queries.alert_events(conn, alert_id)
    audit.record(conn, staff, "read", f"alert/{alert_id}", patient_id=row["patient_id"])
    return row


def _act(conn: DbConn, staff: ClinicalStaff, alert_id: int, action: str, **kw: Any) -> dict[str, Any]:
    row = queries.alert_action(conn, staff, alert_id, action, **kw)
    audit.record(
        conn, staff, action, f"alert/{alert_id}", patient_id=row["patient_id"], detail={"comment": kw.get("comment")}
    )
    return row


@router.post("/{alert_id}/acknowledge")
def acknowledge(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: CommentIn | None = None) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "acknowledge", comment=body.comment if body else None)


@router.post("/{alert_id}/comment")
def comment(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: RequiredCommentIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "comment", comment=body.comment)


@router.post("/{alert_id}/snooze")
def snooze(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: SnoozeIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "snooze", comment=body.comment, until=body.until)


@router.post("/{alert_id}/escalate")
def escalate(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: CommentIn | None = None) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "escalate", comment=body.comment if body else None)


@router.post("/{alert_id}/resolve")
def resolve(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: CommentIn | None = None) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "resolve", comment=body.comment if body else None)
