"""Data access shared by the API routers and the pages, one module per resource. Every
function scopes by the staff member's care units; callers write the audit row.

The names below are re-exported so callers write ``queries.alert_queue(...)`` without
knowing which module holds it; admin, analytics, audit, enrollment, letters, replays and
staff are used as modules (``queries.admin.list_units``). A missing or other-unit row raises
``clinic_api.errors.NotFound``; app.py turns it into the 404.
"""

from clinic_api.queries import admin, analytics, audit, enrollment, letters, replays, staff
from clinic_api.queries._db import Row, _row, _rows
from clinic_api.queries.alerts import (
    ACTION_STATUS,
    ACTIONS,
    ESCALATION_ROLES,
    SEVERITY_ORDER,
    STAFF_RESOLUTION_REASONS,
    UNDO_RESOLVE_S,
    ActionRefused,
    alert_action,
    alert_events,
    alert_for,
    alert_queue,
    alerts_active_between,
    clinical_colleagues,
    patient_messages,
    undo_seconds_left,
)
from clinic_api.queries.care_plans import care_plan_current, care_plan_history, new_care_plan
from clinic_api.queries.gateways import current_gateway, devices, gateway_for, gateway_kits, gateways_for
from clinic_api.queries.patients import (
    ADHERENCE_SQL,
    components_present,
    observations_between,
    patient_for,
    patients_overview,
    rejected_readings,
    series,
    summaries,
    values_since,
)

__all__ = [
    "ACTIONS",
    "ACTION_STATUS",
    "ADHERENCE_SQL",
    "ESCALATION_ROLES",
    "SEVERITY_ORDER",
    "STAFF_RESOLUTION_REASONS",
    "UNDO_RESOLVE_S",
    "ActionRefused",
    "Row",
    "_row",
    "_rows",
    "admin",
    "alert_action",
    "alert_events",
    "alert_for",
    "alert_queue",
    "alerts_active_between",
    "analytics",
    "audit",
    "care_plan_current",
    "care_plan_history",
    "clinical_colleagues",
    "components_present",
    "current_gateway",
    "devices",
    "enrollment",
    "gateway_for",
    "gateway_kits",
    "gateways_for",
    "letters",
    "new_care_plan",
    "observations_between",
    "patient_for",
    "patient_messages",
    "patients_overview",
    "rejected_readings",
    "replays",
    "series",
    "staff",
    "summaries",
    "undo_seconds_left",
    "values_since",
]
