"""The alert queue, one alert with its events, and the staff actions on alerts. Every
function scopes by the staff member's care units; callers write the audit row."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from fastapi import HTTPException, status
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff
from clinic_api.errors import NotFound
from clinic_api.queries._db import Row, _row, _rows
from device_profiles.vocabulary import AlertStatus, severity_rank_sql

# Most severe first, as Severity.rank orders them.
SEVERITY_ORDER = severity_rank_sql("a.severity")


def alert_queue(
    conn: psycopg.Connection[Any],
    staff: Staff,
    *,
    statuses: list[str],
    unit: uuid.UUID | None = None,
    severities: list[str] | None = None,
    condition: str | None = None,
    patient_id: uuid.UUID | None = None,
    limit: int = 200,
    route: str = "staff",
    assigned_to: Staff | None = None,
    escalated_to: Staff | None = None,
) -> list[Row]:
    """Alerts for one route (the clinical queue by default: shown to staff, not awaiting a repeat).

    ``assigned_to`` / ``escalated_to``: only the alerts assigned to, or escalated to, that staff
    member (escalated to them by name, or to one of their roles without a name)."""
    where = [
        "p.unit_id = ANY(%(units)s)",
        "a.route = %(route)s",
        # Findings routed to the patient or the record, and events still awaiting a
        # confirming measurement, are not the monitoring team's work.
        "(a.route <> 'staff' OR a.shown_to_staff_at IS NOT NULL)",
        # A snooze that has run out puts the alert back in the open queue, whether or not the
        # alerting engine has flipped its status yet.
        """(a.status = ANY(%(statuses)s)
            OR ('open' = ANY(%(statuses)s) AND a.status = 'snoozed' AND a.snoozed_until <= now()))""",
    ]
    params: dict[str, Any] = {"units": list(staff.unit_ids), "statuses": statuses, "limit": limit, "route": route}
    if unit is not None:
        where.append("p.unit_id = %(unit)s")
        params["unit"] = unit
    if severities:
        where.append("a.severity = ANY(%(severities)s)")
        params["severities"] = severities
    if condition:
        where.append("a.condition = %(condition)s")
        params["condition"] = condition
    if patient_id is not None:
        where.append("a.patient_id = %(patient)s")
        params["patient"] = patient_id
    if assigned_to is not None:
        where.append("a.assigned_to = %(assignee)s")
        params["assignee"] = assigned_to.id
    if escalated_to is not None:
        where.append(
            """(a.escalated_to = %(recipient)s
                OR (a.escalated_to IS NULL AND a.escalated_to_role = ANY(%(recipient_roles)s)))"""
        )
        params["recipient"] = escalated_to.id
        params["recipient_roles"] = sorted(escalated_to.roles)
    return _rows(
        conn,
        f"""SELECT a.id, a.patient_id, p.pseudonym, p.display_name AS patient_name, p.unit_id,
                   a.rule_id, a.condition, a.status, a.severity, a.title, a.opened_at, a.updated_at,
                   a.last_fired_at, a.fire_count, a.latest_value, a.evidence, a.snoozed_until,
                   a.acknowledged_at, a.escalated_at, a.escalation_level, a.resolution_suggested_at,
                   a.resolved_at, a.event_type, a.route, a.shown_to_staff_at,
                   a.assigned_to, sa.display_name AS assigned_to_name,
                   a.escalated_to, se.display_name AS escalated_to_name, a.escalated_to_role,
                   a.resolution_reason, u.code AS unit_code,
                   extract(epoch FROM now() - a.opened_at)::bigint AS age_s
            FROM alert a JOIN patient p ON p.id = a.patient_id
            JOIN care_unit u ON u.id = p.unit_id
            LEFT JOIN staff sa ON sa.id = a.assigned_to
            LEFT JOIN staff se ON se.id = a.escalated_to
            WHERE {" AND ".join(where)}
            ORDER BY {SEVERITY_ORDER} DESC, a.opened_at ASC, a.id ASC
            LIMIT %(limit)s""",
        params,
    )


def alert_for(conn: psycopg.Connection[Any], staff: Staff, alert_id: int, *, lock: bool = False) -> Row:
    row = _row(
        conn,
        f"""SELECT a.*, p.pseudonym, p.display_name AS patient_name, p.unit_id
            FROM alert a JOIN patient p ON p.id = a.patient_id
            WHERE a.id = %s AND p.unit_id = ANY(%s) {"FOR UPDATE OF a" if lock else ""}""",
        (alert_id, list(staff.unit_ids)),
    )
    if row is None:
        raise NotFound("alert")
    return row


def alert_events(conn: psycopg.Connection[Any], alert_id: int) -> list[Row]:
    return _rows(
        conn,
        """SELECT e.id, e.event, e.at, e.staff_id, s.display_name AS staff_name, e.comment, e.details
           FROM alert_event e LEFT JOIN staff s ON s.id = e.staff_id WHERE e.alert_id = %s ORDER BY e.at, e.id""",
        (alert_id,),
    )


ACTIONS = (
    "acknowledge",
    "comment",
    "snooze",
    "escalate",
    "resolve",
    "undo_resolve",
    "claim",
    "assign",
    "unassign",
    "handover",
)
# The reasons staff choose from when closing an alert (ResolutionReason without the
# platform's own not_confirmed / condition_cleared).
STAFF_RESOLUTION_REASONS = (
    "contacted_patient",
    "no_action_needed",
    "referred",
    "medication_changed",
    "device_problem",
    "measurement_error",
)
ESCALATION_ROLES = ("nurse", "physician")
# How long after resolving the same staff member may take it back ("Ångra").
UNDO_RESOLVE_S = 30
# The status each status-changing staff action moves an alert to (others leave it as it is);
# every move must be one of the vocabulary's AlertStatus transitions.
ACTION_STATUS: dict[str, AlertStatus] = {
    "acknowledge": AlertStatus.ACKNOWLEDGED,
    "snooze": AlertStatus.SNOOZED,
    "resolve": AlertStatus.RESOLVED,
}


class ActionRefused(HTTPException):
    """A staff action that cannot be done now; ``code`` names the reason for the pages' Swedish message."""

    def __init__(self, status_code: int, code: str, detail: str) -> None:
        super().__init__(status_code, detail)
        self.code = code


def clinical_colleagues(
    conn: psycopg.Connection[Any], unit_id: uuid.UUID, *, roles: tuple[str, ...] = ESCALATION_ROLES
) -> list[Row]:
    """Active staff of a care unit with one of ``roles`` (whom an alert can be assigned or escalated to)."""
    return _rows(
        conn,
        """SELECT s.id, s.display_name, s.roles FROM staff s JOIN staff_unit su ON su.staff_id = s.id
           WHERE su.unit_id = %s AND s.active AND s.roles && %s::text[] ORDER BY s.display_name""",
        (unit_id, list(roles)),
    )


def _colleague(
    conn: psycopg.Connection[Any], alert: Row, staff_id: uuid.UUID, *, roles: tuple[str, ...], what: str
) -> Row:
    unit_id = alert["unit_id"]
    for c in clinical_colleagues(conn, unit_id, roles=roles):
        if c["id"] == staff_id:
            return c
    raise ActionRefused(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "unknown_recipient",
        f"{what} must be an active {' or '.join(roles)} of the alert's care unit",
    )


def _last_resolved_event(conn: psycopg.Connection[Any], alert_id: int) -> Row | None:
    return _row(
        conn,
        """SELECT e.id, e.staff_id, e.details, extract(epoch FROM now() - e.at)::float8 AS age_s
           FROM alert_event e WHERE e.alert_id = %s AND e.event = 'resolved' ORDER BY e.at DESC, e.id DESC LIMIT 1""",
        (alert_id,),
    )


def undo_seconds_left(
    conn: psycopg.Connection[Any], staff: Staff, alert: Row, *, window_s: float = UNDO_RESOLVE_S
) -> float:
    """Seconds left in which this staff member may undo the alert's resolution (0: none)."""
    if alert["status"] != "resolved":
        return 0.0
    ev = _last_resolved_event(conn, alert["id"])
    if ev is None or ev["staff_id"] != staff.id or "previous_status" not in ev["details"]:
        return 0.0
    return max(0.0, window_s - float(ev["age_s"]))


def alert_action(
    conn: psycopg.Connection[Any],
    staff: Staff,
    alert_id: int,
    action: str,
    *,
    comment: str | None = None,
    until: dt.datetime | None = None,
    to: uuid.UUID | None = None,
    role: str | None = None,
    reason: str | None = None,
    undo_window_s: float = UNDO_RESOLVE_S,
) -> Row:
    """Apply one staff action to an alert and record it as an alert_event (who/when).

    This is the only implementation of the staff actions; the alerting engine only makes
    the time- and data-driven transitions.
    """
    alert = alert_for(conn, staff, alert_id, lock=True)
    if alert["status"] == "resolved" and action not in ("comment", "undo_resolve"):
        raise ActionRefused(status.HTTP_409_CONFLICT, "already_resolved", "alert is already resolved")
    details: dict[str, Any] = {}
    moves_to = ACTION_STATUS.get(action)
    current = AlertStatus(alert["status"])
    if moves_to is not None and moves_to is not current and not current.may_become(moves_to):
        raise ActionRefused(status.HTTP_409_CONFLICT, "not_allowed", f"an alert that is {current} cannot be {action}d")
    if action == "acknowledge":
        if alert["status"] == "acknowledged":
            raise ActionRefused(status.HTTP_409_CONFLICT, "already_acknowledged", "alert is already acknowledged")
        conn.execute(
            """UPDATE alert SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s,
                      snoozed_until = NULL, updated_at = now() WHERE id = %s""",
            (staff.id, alert_id),
        )
        event = "acknowledged"
    elif action == "comment":
        if not comment:
            raise ActionRefused(status.HTTP_422_UNPROCESSABLE_CONTENT, "comment_required", "a comment needs text")
        event = "commented"
    elif action == "snooze":
        now = conn.execute("SELECT now()").fetchone()
        assert now is not None
        if until is None or until <= now[0]:
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "snooze_past", "snooze 'until' must be in the future"
            )
        if until > now[0] + dt.timedelta(days=30):
            raise ActionRefused(status.HTTP_422_UNPROCESSABLE_CONTENT, "snooze_too_long", "snooze at most 30 days")
        conn.execute(
            "UPDATE alert SET status = 'snoozed', snoozed_until = %s, updated_at = now() WHERE id = %s",
            (until, alert_id),
        )
        details["until"] = until.isoformat()
        event = "snoozed"
    elif action == "escalate":
        if not comment or not comment.strip():
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "reason_required", "an escalation needs a reason"
            )
        if (to is None) == (role is None):
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "recipient_required",
                "escalate to either a named physician ('to') or a role ('role')",
            )
        if to is not None:
            _colleague(conn, alert, to, roles=("physician",), what="the escalation recipient")
            role = "physician"
        elif role not in ESCALATION_ROLES:
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_recipient", "role must be 'nurse' or 'physician'"
            )
        conn.execute(
            """UPDATE alert SET escalated_at = now(), escalation_level = escalation_level + 1, escalated_to = %s,
                      escalated_to_role = %s, updated_at = now() WHERE id = %s""",
            (to, role, alert_id),
        )
        details.update(level=alert["escalation_level"] + 1, to=str(to) if to else None, role=role, by="staff")
        event = "escalated"
    elif action == "resolve":
        if reason not in STAFF_RESOLUTION_REASONS:
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "reason_required",
                f"resolving needs a reason, one of {', '.join(STAFF_RESOLUTION_REASONS)}",
            )
        conn.execute(
            """UPDATE alert SET status = 'resolved', resolved_at = now(), resolved_by = %s, snoozed_until = NULL,
                      resolution_reason = %s, updated_at = now() WHERE id = %s""",
            (staff.id, reason, alert_id),
        )
        # What "Ångra" puts back.
        details.update(
            reason=reason,
            previous_status=alert["status"],
            previous_snoozed_until=alert["snoozed_until"].isoformat() if alert["snoozed_until"] else None,
        )
        event = "resolved"
    elif action == "undo_resolve":
        details = _undo_resolve(conn, staff, alert, window_s=undo_window_s)
        event = "resolve_undone"
    elif action in ("claim", "assign", "handover"):
        target = staff.id if action == "claim" else to
        if action == "assign" and target is None:
            raise ActionRefused(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "recipient_required", "assign needs a colleague ('to')"
            )
        if action == "handover" and (not comment or not comment.strip()):
            raise ActionRefused(status.HTTP_422_UNPROCESSABLE_CONTENT, "comment_required", "a handover needs a note")
        if target is not None:
            _colleague(conn, alert, target, roles=ESCALATION_ROLES, what="the assignee")
            if action != "handover" and alert["assigned_to"] == target:
                raise ActionRefused(status.HTTP_409_CONFLICT, "already_assigned", "alert is already assigned to them")
            conn.execute("UPDATE alert SET assigned_to = %s, updated_at = now() WHERE id = %s", (target, alert_id))
        details.update(
            to=str(target) if target else None,
            by=str(staff.id),
            previous=str(alert["assigned_to"]) if alert["assigned_to"] else None,
        )
        event = "handover" if action == "handover" else "assigned"
    elif action == "unassign":
        if alert["assigned_to"] is None:
            raise ActionRefused(status.HTTP_409_CONFLICT, "not_assigned", "alert is not assigned to anyone")
        conn.execute("UPDATE alert SET assigned_to = NULL, updated_at = now() WHERE id = %s", (alert_id,))
        details.update(to=None, by=str(staff.id), previous=str(alert["assigned_to"]))
        event = "unassigned"
    else:
        raise NotFound("action", detail=f"unknown action {action!r}")
    conn.execute(
        "INSERT INTO alert_event (alert_id, event, staff_id, comment, details) VALUES (%s, %s, %s, %s, %s)",
        (alert_id, event, staff.id, comment, Jsonb(details)),
    )
    return alert_for(conn, staff, alert_id)


def _undo_resolve(conn: psycopg.Connection[Any], staff: Staff, alert: Row, *, window_s: float) -> dict[str, Any]:
    if alert["status"] != "resolved":
        raise ActionRefused(status.HTTP_409_CONFLICT, "not_resolved", "alert is not resolved")
    ev = _last_resolved_event(conn, alert["id"])
    if ev is None or "previous_status" not in ev["details"]:
        raise ActionRefused(status.HTTP_409_CONFLICT, "undo_unavailable", "this resolution cannot be undone")
    if ev["staff_id"] != staff.id:
        raise ActionRefused(
            status.HTTP_409_CONFLICT, "undo_not_yours", "only the staff member who resolved the alert can undo it"
        )
    if float(ev["age_s"]) > window_s:
        raise ActionRefused(
            status.HTTP_409_CONFLICT,
            "undo_expired",
            f"a resolution can be undone only within {window_s:g} seconds; reopen is not possible now",
        )
    # The engine may have opened a new alert for the same event meanwhile; one open per event.
    clash = _row(
        conn,
        "SELECT id FROM alert WHERE patient_id = %s AND event_type = %s AND status <> 'resolved' AND id <> %s",
        (alert["patient_id"], alert["event_type"], alert["id"]),
    )
    if clash is not None:
        raise ActionRefused(
            status.HTTP_409_CONFLICT, "undo_superseded", f"a newer alert for the same event is open (id {clash['id']})"
        )
    previous = ev["details"]["previous_status"]
    if not AlertStatus.RESOLVED.may_become(AlertStatus(previous)):
        raise ActionRefused(status.HTTP_409_CONFLICT, "undo_unavailable", "this resolution cannot be undone")
    snoozed_until = ev["details"].get("previous_snoozed_until")
    conn.execute(
        """UPDATE alert SET status = %s, resolved_at = NULL, resolved_by = NULL, resolution_reason = NULL,
                  snoozed_until = %s, updated_at = now() WHERE id = %s""",
        (previous, snoozed_until if previous == "snoozed" else None, alert["id"]),
    )
    return {"restored_status": previous, "resolved_event": ev["id"]}


def alerts_active_between(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[Row]:
    """A patient's alerts active at some time in [start, end) (the FHIR export's Flags)."""
    return _rows(
        conn,
        """SELECT id, rule_id, severity, title, status, opened_at, resolved_at FROM alert
           WHERE patient_id = %s AND opened_at < %s AND (resolved_at IS NULL OR resolved_at >= %s)
           ORDER BY opened_at""",
        (patient_id, end, start),
    )


def patient_messages(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, tuple[str, str]]:
    """The messages sent to the patient about an alert: (level, Swedish text) by message id."""
    rows = _rows(conn, "SELECT id, level, message_sv FROM patient_message WHERE alert_id = %s", (alert_id,))
    return {str(r["id"]): (r["level"], r["message_sv"]) for r in rows}
