"""Alert queue and the staff actions on an alert."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from clinic_api import audit, queries
from clinic_api.deps import AppSettings, ClinicalStaff, DbConn
from clinic_api.jsonresp import json_response
from clinic_api.models import (
    AlertStatus,
    AssignIn,
    CommentIn,
    EscalateIn,
    HandoverIn,
    RequiredCommentIn,
    ResolveIn,
    SeverityName,
    SnoozeIn,
)
from clinic_api.schemas import AlertDetail, AlertListItem, AlertOut, documented
from device_profiles.vocabulary import Condition

router = APIRouter(prefix="/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**62)]
Me = Annotated[Literal["me"] | None, Query(description="'me': only the alerts of the caller")]
# With a personal filter and no status, everything still to be done (not only 'open').
MY_WORK = ["open", "acknowledged", "snoozed"]


# The queue is serialised by jsonresp (the hot path); the model documents it.
@router.get("", summary="Alert queue, most severe first, then oldest", response_model=list[AlertListItem])
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
    assigned_to: Me = None,
    escalated_to: Me = None,
) -> Response:
    if patient_id is not None:
        queries.patient_for(conn, staff, patient_id)
    personal = assigned_to is not None or escalated_to is not None
    rows = queries.alert_queue(
        conn,
        staff,
        statuses=[str(s) for s in status] if status else (MY_WORK if personal else ["open"]),
        unit=unit,
        severities=[str(s) for s in severity] if severity else None,
        condition=str(condition) if condition else None,
        patient_id=patient_id,
        limit=limit,
        route=route,
        assigned_to=staff if assigned_to else None,
        escalated_to=staff if escalated_to else None,
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


@router.get("/{alert_id}", summary="One alert with its evidence and events", response_model=AlertDetail)
def get_alert(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId) -> dict[str, Any]:
    row = queries.alert_for(conn, staff, alert_id)
    row["events"] = queries.alert_events(conn, alert_id)
    audit.record(conn, staff, "read", f"alert/{alert_id}", patient_id=row["patient_id"])
    return row


def _act(conn: DbConn, staff: ClinicalStaff, alert_id: int, action: str, **kw: Any) -> dict[str, Any]:
    row = queries.alert_action(conn, staff, alert_id, action, **kw)
    detail = {"comment": kw.get("comment")} | {k: str(kw[k]) for k in ("to", "role", "reason") if kw.get(k)}
    audit.record(conn, staff, action, f"alert/{alert_id}", patient_id=row["patient_id"], detail=detail)
    return row


@router.post("/{alert_id}/acknowledge", **documented(AlertOut))
def acknowledge(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: CommentIn | None = None) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "acknowledge", comment=body.comment if body else None)


@router.post("/{alert_id}/comment", **documented(AlertOut))
def comment(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: RequiredCommentIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "comment", comment=body.comment)


@router.post("/{alert_id}/snooze", **documented(AlertOut))
def snooze(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: SnoozeIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "snooze", comment=body.comment, until=body.until)


@router.post(
    "/{alert_id}/escalate", **documented(AlertOut), summary="Escalate to a named physician or to a role, with a reason"
)
def escalate(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: EscalateIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "escalate", comment=body.reason, to=body.to, role=body.role)


@router.post("/{alert_id}/resolve", **documented(AlertOut), summary="Close the alert with a structured reason")
def resolve(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: ResolveIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "resolve", comment=body.comment, reason=body.reason)


@router.post(
    "/{alert_id}/undo-resolve",
    **documented(AlertOut),
    summary="Take back one's own resolution within the undo window (409 after it)",
)
def undo_resolve(conn: DbConn, staff: ClinicalStaff, settings: AppSettings, alert_id: AlertId) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "undo_resolve", undo_window_s=settings.undo_resolve_s)


@router.post("/{alert_id}/claim", **documented(AlertOut), summary="Take the alert (assigned to me)")
def claim(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "claim")


@router.post(
    "/{alert_id}/assign", **documented(AlertOut), summary="Assign the alert to a nurse or physician of its unit"
)
def assign(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: AssignIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "assign", to=body.to, comment=body.comment)


@router.post("/{alert_id}/unassign", **documented(AlertOut), summary="Leave the alert (nobody assigned)")
def unassign(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: CommentIn | None = None) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "unassign", comment=body.comment if body else None)


@router.post(
    "/{alert_id}/handover",
    **documented(AlertOut),
    summary="A handover note for the next shift, optionally to a colleague",
)
def handover(conn: DbConn, staff: ClinicalStaff, alert_id: AlertId, body: HandoverIn) -> dict[str, Any]:
    return _act(conn, staff, alert_id, "handover", comment=body.comment, to=body.to)
