"""Alert-burden analytics for one care unit: how many alerts reached the monitoring team,
how they were handled, and which rules started episodes.

One function serves both the API (``GET /units/{id}/alert-burden``) and the page
(``/ui/analytics``), so the two always show the same figures. Every figure is computed by
PostgreSQL; the caller writes the audit row.

Definitions (also in clinic_api/README.md):

* window: ``[now - days, now)``, ``now`` being the transaction's ``now()``;
* alerts: alerts of the unit's patients whose ``shown_to_staff_at`` lies in the window
  (the alert reached the staff queue then), by ``event_type``;
* acknowledged share: of those, the share with an ``acknowledged_at``;
* resolved without action: of those, the share resolved with ``resolution_reason``
  ``no_action_needed`` or ``measurement_error``;
* median minutes to acknowledge: from ``shown_to_staff_at`` to ``acknowledged_at``, over
  the acknowledged ones (null when none);
* not confirmed: alerts opened in the window that the platform closed with
  ``resolution_reason = 'not_confirmed'`` (the repeat measurement was normal; they never
  reached staff), counted by ``opened_at``;
* by rule: ``alert_finding`` episodes started (``first_at``) in the window, per rule and route;
* patient-months: the unit's active patients (now) x days / 30; rates are per patient-month.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from clinic_api.auth import Staff
from clinic_api.errors import NotFound
from clinic_api.queries._db import Row, _row, _rows

MAX_DAYS = 365
NO_ACTION_REASONS = ("no_action_needed", "measurement_error")

# The unit's window and exposure, shared by both queries below.
_WINDOW = """
    w AS (
        SELECT now() AS t_to, now() - make_interval(days => %(days)s) AS t_from,
               (SELECT count(*) FROM patient WHERE unit_id = %(unit)s AND active) AS patients
    ),
    pm AS (SELECT w.*, w.patients * %(days)s / 30.0 AS patient_months FROM w)
"""

# One scan over the unit's alerts that either reached staff in the window or were opened in
# it and closed as not confirmed; GROUPING SETS adds the unit total (GROUPING(...) = 1).
_EVENT_TYPES_SQL = f"""
    WITH {_WINDOW},
    a AS (
        SELECT a.event_type, a.acknowledged_at, a.shown_to_staff_at, a.resolution_reason,
               (a.shown_to_staff_at >= pm.t_from AND a.shown_to_staff_at < pm.t_to) AS shown,
               (a.resolution_reason = 'not_confirmed' AND a.opened_at >= pm.t_from AND a.opened_at < pm.t_to)
                   AS not_confirmed
        FROM alert a JOIN patient p ON p.id = a.patient_id CROSS JOIN pm
        WHERE p.unit_id = %(unit)s
          AND ((a.shown_to_staff_at >= pm.t_from AND a.shown_to_staff_at < pm.t_to)
               OR (a.resolution_reason = 'not_confirmed' AND a.opened_at >= pm.t_from AND a.opened_at < pm.t_to))
    ),
    g AS (
        SELECT GROUPING(a.event_type) = 1 AS is_total, a.event_type,
               count(*) FILTER (WHERE a.shown) AS alerts,
               count(*) FILTER (WHERE a.shown AND a.acknowledged_at IS NOT NULL) AS acknowledged,
               count(*) FILTER (WHERE a.shown AND a.resolution_reason = ANY(%(no_action)s)) AS resolved_no_action,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM a.acknowledged_at - a.shown_to_staff_at) / 60
               ) FILTER (WHERE a.shown AND a.acknowledged_at IS NOT NULL) AS median_min,
               count(*) FILTER (WHERE a.not_confirmed) AS not_confirmed
        FROM a
        GROUP BY GROUPING SETS ((a.event_type), ())
    )
    SELECT g.is_total, g.event_type, g.alerts,
           round(g.alerts / nullif(pm.patient_months, 0), 3)::float8 AS alerts_per_patient_month,
           round(g.acknowledged::numeric / nullif(g.alerts, 0), 4)::float8 AS acknowledged_share,
           round(g.resolved_no_action::numeric / nullif(g.alerts, 0), 4)::float8 AS resolved_no_action_share,
           round(g.median_min::numeric, 1)::float8 AS median_minutes_to_acknowledge,
           g.not_confirmed
    FROM g CROSS JOIN pm
    ORDER BY g.alerts DESC, g.not_confirmed DESC, g.event_type
"""

_RULES_SQL = f"""
    WITH {_WINDOW}
    SELECT f.rule_id, f.route, count(*) AS episodes,
           round(count(*) / nullif(pm.patient_months, 0), 3)::float8 AS episodes_per_patient_month
    FROM alert_finding f JOIN patient p ON p.id = f.patient_id CROSS JOIN pm
    WHERE p.unit_id = %(unit)s AND f.first_at >= pm.t_from AND f.first_at < pm.t_to
    GROUP BY f.rule_id, f.route, pm.patient_months
    ORDER BY episodes DESC, f.rule_id, f.route
"""


def units_of(conn: psycopg.Connection[Any], staff: Staff) -> list[Row]:
    """The staff member's care units (id, code, name), by code."""
    return _rows(conn, "SELECT id, code, name FROM care_unit WHERE id = ANY(%s) ORDER BY code", (list(staff.unit_ids),))


def alert_burden(conn: psycopg.Connection[Any], staff: Staff, unit_id: uuid.UUID, days: int) -> Row:
    """The alert burden of one of the staff member's units over the last ``days`` days.

    Another unit answers 404, as another unit's patient does (its existence is not revealed).
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}")
    unit = _row(
        conn,
        "SELECT id, code, name FROM care_unit WHERE id = %s AND id = ANY(%s)",
        (unit_id, list(staff.unit_ids)),
    )
    if unit is None:
        raise NotFound("care unit")
    params = {"unit": unit_id, "days": days, "no_action": list(NO_ACTION_REASONS)}
    head = _row(conn, f"WITH {_WINDOW} SELECT t_from, t_to, patients, patient_months::float8 FROM pm", params)
    assert head is not None
    groups = _rows(conn, _EVENT_TYPES_SQL, params)
    total = next(g for g in groups if g["is_total"])
    by_event_type = [g for g in groups if not g["is_total"]]
    for g in (*by_event_type, total):
        del g["is_total"]
    del total["event_type"]
    return {
        "unit_id": unit["id"],
        "unit_code": unit["code"],
        "unit_name": unit["name"],
        "days": days,
        "from": head["t_from"],
        "to": head["t_to"],
        "patients": head["patients"],
        "patient_months": round(head["patient_months"], 3),
        "total": total,
        "by_event_type": by_event_type,
        "by_rule": _rows(conn, _RULES_SQL, params),
    }
