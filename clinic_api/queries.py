"""Data access shared by the API routers and the pages. Every function scopes by the
staff member's care units; callers write the audit row."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np
import psycopg
from fastapi import HTTPException, status
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff
from clinic_api.downsample import Buckets, bucket
from clinic_api.models import CarePlanIn
from device_profiles.vocabulary import AlertStatus, severity_rank_sql

Row = dict[str, Any]
# Most severe first, as Severity.rank orders them.
SEVERITY_ORDER = severity_rank_sql("a.severity")


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _row(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> Row | None:
    rows = _rows(conn, sql, params)
    return rows[0] if rows else None


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def patient_for(conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID) -> Row:
    """The patient if it belongs to one of the staff member's units; 404 otherwise (so the
    existence of other units' patients is not revealed)."""
    row = _row(
        conn,
        """SELECT p.id, p.pseudonym, p.display_name, p.birth_year, p.unit_id, p.active, p.created_at,
                  u.code AS unit_code, u.name AS unit_name
           FROM patient p JOIN care_unit u ON u.id = p.unit_id
           WHERE p.id = %s AND p.unit_id = ANY(%s)""",
        (patient_id, list(staff.unit_ids)),
    )
    if row is None:
        raise not_found("patient")
    return row


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
        raise not_found("alert")
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
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown action {action!r}")
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


# Adherence over today and the six days before (local days): distinct (kind, day) measured,
# out of what was due. Today counts only for the kinds already measured today, so a
# measurement not yet taken this morning is not a missed one (at 01:00 every patient
# would otherwise show 6/7). Days are counted in Europe/Stockholm time, DST included.
ADHERENCE_SQL = """
    LEFT JOIN LATERAL (
        SELECT CASE WHEN cardinality(k.kinds) = 0 THEN NULL ELSE
               least(100, round(100.0 * count(DISTINCT (o.kind, (o.measured_at AT TIME ZONE 'Europe/Stockholm')::date))
                     / (6 * cardinality(k.kinds) + count(DISTINCT o.kind) FILTER (WHERE o.measured_at >= d.today)),
                     1))::float8 END AS adherence_7d_pct
        FROM (SELECT coalesce(ARRAY(SELECT jsonb_object_keys(cp.schedule)), '{}') AS kinds) k
        CROSS JOIN (
            SELECT date_trunc('day', now() AT TIME ZONE 'Europe/Stockholm') AT TIME ZONE 'Europe/Stockholm' AS today,
                   (date_trunc('day', now() AT TIME ZONE 'Europe/Stockholm') - interval '6 days')
                       AT TIME ZONE 'Europe/Stockholm' AS since
        ) d
        LEFT JOIN observation o ON o.patient_id = p.id AND o.kind = ANY(k.kinds)
             AND o.measured_at >= d.since AND o.status <> 'rejected'
        GROUP BY k.kinds
    ) adh ON true
"""


def patients_overview(conn: psycopg.Connection[Any], staff: Staff, unit: uuid.UUID | None = None) -> list[Row]:
    params: dict[str, Any] = {"units": list(staff.unit_ids)}
    extra = ""
    if unit is not None:
        extra = "AND p.unit_id = %(unit)s"
        params["unit"] = unit
    return _rows(
        conn,
        f"""SELECT p.id, p.pseudonym, p.display_name, p.birth_year, p.unit_id, u.code AS unit_code,
                   coalesce(cp.conditions, '{{}}') AS conditions,
                   (SELECT count(*) FROM alert a WHERE a.patient_id = p.id AND a.status = 'open'
                      AND a.route = 'staff' AND a.shown_to_staff_at IS NOT NULL) AS open_alerts,
                   (SELECT a.severity FROM alert a WHERE a.patient_id = p.id AND a.status IN ('open', 'acknowledged')
                      AND a.route = 'staff' AND a.shown_to_staff_at IS NOT NULL
                     ORDER BY {SEVERITY_ORDER} DESC LIMIT 1) AS top_severity,
                   (SELECT max(o.measured_at) FROM observation o WHERE o.patient_id = p.id) AS last_measurement_at,
                   adh.adherence_7d_pct
            FROM patient p JOIN care_unit u ON u.id = p.unit_id
            LEFT JOIN care_plan_current cp ON cp.patient_id = p.id
            {ADHERENCE_SQL}
            WHERE p.unit_id = ANY(%(units)s) AND p.active {extra}
            ORDER BY p.pseudonym""",
        params,
    )


def care_plan_current(conn: psycopg.Connection[Any], patient_id: uuid.UUID) -> Row | None:
    return _row(conn, "SELECT * FROM care_plan_current WHERE patient_id = %s", (patient_id,))


def care_plan_history(conn: psycopg.Connection[Any], patient_id: uuid.UUID) -> list[Row]:
    return _rows(
        conn,
        """SELECT c.*, s.display_name AS created_by_name FROM care_plan c LEFT JOIN staff s ON s.id = c.created_by
           WHERE c.patient_id = %s ORDER BY c.version DESC""",
        (patient_id,),
    )


def new_care_plan(conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID, plan: CarePlanIn) -> Row:
    # Lock the patient row so two concurrent edits get consecutive versions, not a conflict.
    conn.execute("SELECT 1 FROM patient WHERE id = %s FOR UPDATE", (patient_id,))
    row = _row(
        conn,
        """INSERT INTO care_plan (patient_id, version, conditions, thresholds, schedule, dry_weight_kg,
                                  personal_best_pef, spo2_target, notes, created_by)
           VALUES (%s, (SELECT coalesce(max(version), 0) + 1 FROM care_plan WHERE patient_id = %s),
                   %s, %s, %s, %s, %s, %s, %s, %s)
           RETURNING *""",
        (
            patient_id,
            patient_id,
            [str(c) for c in plan.conditions],
            Jsonb(plan.thresholds),
            Jsonb({str(k): v.model_dump() for k, v in plan.schedule.items()}),
            plan.dry_weight_kg,
            plan.personal_best_pef,
            plan.spo2_target,
            plan.notes,
            staff.id,
        ),
    )
    assert row is not None
    return row


def current_gateway(conn: psycopg.Connection[Any], patient_id: uuid.UUID) -> Row | None:
    return _row(
        conn,
        """SELECT g.id, g.serial, g.enrolled_at, g.online, g.last_status, g.last_status_at,
                  lower(ga.valid) AS assigned_from
           FROM gateway_assignment ga JOIN gateway g ON g.id = ga.gateway_id
           WHERE ga.patient_id = %s AND ga.valid @> now()""",
        (patient_id,),
    )


def devices(conn: psycopg.Connection[Any], gateway_id: str) -> list[Row]:
    return _rows(
        conn,
        """SELECT address, model, serial, firmware, kind, battery_pct, first_seen_at, last_seen_at
           FROM device WHERE gateway_id = %s ORDER BY kind NULLS LAST, address""",
        (gateway_id,),
    )


# The series travels as one bytea: per reading 8 bytes of timestamptz_send (int64 microseconds
# since 2000-01-01 UTC, big-endian) followed by 8 bytes of float8send (IEEE 754 big-endian),
# concatenated in time order by the server. numpy reads it in one call; 25,000 readings as
# Python row objects would dominate the request.
_PACKED = np.dtype([("t", ">i8"), ("v", ">f8")])
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds


def _packed_series(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, component: str, start: dt.datetime, end: dt.datetime
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    row = conn.execute(
        """SELECT string_agg(timestamptz_send(measured_at) || float8send(value), ''::bytea ORDER BY measured_at)
           FROM observation
           WHERE patient_id = %s AND component = %s AND measured_at >= %s AND measured_at < %s
             AND status <> 'rejected' AND value IS NOT NULL""",
        (patient_id, component, start, end),
        binary=True,
    ).fetchone()
    data = bytes(row[0]) if row and row[0] is not None else b""
    rows = np.frombuffer(data, dtype=_PACKED)
    # Unix microseconds first (exact in int64), then one division: the correctly rounded
    # seconds, the same float as datetime.timestamp(). Dividing first and adding the epoch
    # after rounded twice and differed in the last bit for a quarter of all instants, which
    # moved a reading lying exactly on a bucket boundary into the neighbouring bucket.
    return (rows["t"] + _PG_EPOCH_US).astype(np.float64) / 1e6, rows["v"].astype(np.float64)


def series(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    component: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    max_points: int,
) -> Buckets:
    """One component's values in [start, end): the readings themselves when there are at most
    ``max_points``, otherwise ``max_points`` equal time buckets with min/mean/max/count.

    Bucketing is numpy (``downsample.bucket``) over the packed series read in one piece.
    """
    t_s, values = _packed_series(conn, patient_id, component, start, end)
    return bucket(t_s, values, start.timestamp(), end.timestamp(), max_points)


def values_since(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, components: list[str], since: dt.datetime
) -> dict[str, tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]]:
    out: dict[str, tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]] = {}
    for comp in components:
        rows = conn.execute(
            """SELECT extract(epoch FROM measured_at)::float8, value FROM observation
               WHERE patient_id = %s AND component = %s AND measured_at >= %s AND status <> 'rejected'
                 AND value IS NOT NULL ORDER BY measured_at""",
            (patient_id, comp, since),
            binary=True,
        ).fetchall()
        arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
        out[comp] = (arr[:, 0], arr[:, 1])
    return out


def summaries(conn: psycopg.Connection[Any], patient_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    """Condition summaries (CLINICAL_RULES.md): CGM time in ranges over 14 days, 7-day home BP
    mean, weight trend against dry weight, PEF as % of personal best."""
    plan = care_plan_current(conn, patient_id) or {}
    since = now - dt.timedelta(days=14)
    data = values_since(conn, patient_id, ["glucose_interstitial", "systolic", "diastolic", "weight", "pef"], since)
    out: dict[str, Any] = {}
    _, g = data["glucose_interstitial"]
    if len(g):
        mean = float(g.mean())
        out["cgm_14d"] = {
            "n": len(g),
            "mean_mmol_l": round(mean, 2),
            "cv_pct": round(float(g.std(ddof=1)) / mean * 100, 1) if len(g) > 1 else None,
            "gmi_mmol_mol": round(12.71 + 4.70587 * mean, 1),
            "tir_3_9_10_pct": round(float(((g >= 3.9) & (g <= 10)).mean() * 100), 1),
            "tbr_lt_3_9_pct": round(float((g < 3.9).mean() * 100), 1),
            "tbr_lt_3_0_pct": round(float((g < 3.0).mean() * 100), 1),
            "tar_gt_10_pct": round(float((g > 10).mean() * 100), 1),
            "tar_gt_13_9_pct": round(float((g > 13.9).mean() * 100), 1),
            # 5-minute sensors: 288 readings a day expected.
            "coverage_pct": round(min(100.0, len(g) / (14 * 288) * 100), 1),
        }
    week = (now - dt.timedelta(days=7)).timestamp()
    ts, sys_ = data["systolic"]
    td, dia = data["diastolic"]
    sys7, dia7 = sys_[ts >= week], dia[td >= week]
    if len(sys7):
        out["bp_7d"] = {
            "n": len(sys7),
            "systolic_mean_mmhg": round(float(sys7.mean()), 1),
            "diastolic_mean_mmhg": round(float(dia7.mean()), 1) if len(dia7) else None,
            # ESH: at least 12 readings over the week for a valid home BP mean (H6).
            "sufficient": len(sys7) >= 12,
        }
    tw, w = data["weight"]
    if len(w):
        slope = float(np.polyfit((tw - tw[0]) / 86400.0, w, 1)[0]) if len(w) >= 3 and tw[-1] > tw[0] else None
        mean7 = w[tw >= week]
        dry = plan.get("dry_weight_kg")
        out["weight"] = {
            "latest_kg": round(float(w[-1]), 1),
            "trend_kg_per_day_14d": round(slope, 3) if slope is not None else None,
            "mean_7d_kg": round(float(mean7.mean()), 1) if len(mean7) else None,
            "dry_weight_kg": dry,
            "mean_7d_minus_dry_kg": round(float(mean7.mean()) - dry, 1) if len(mean7) and dry else None,
        }
    tp, pef = data["pef"]
    if len(pef):
        best = plan.get("personal_best_pef")
        pef7 = pef[tp >= week]
        out["pef"] = {
            "latest_l_min": round(float(pef[-1]), 0),
            "personal_best_l_min": best,
            "latest_pct_of_best": round(float(pef[-1]) / best * 100, 1) if best else None,
            "mean_7d_pct_of_best": round(float(pef7.mean()) / best * 100, 1) if best and len(pef7) else None,
        }
    return out
