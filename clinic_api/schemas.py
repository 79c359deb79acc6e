"""Response models of every JSON endpoint under /api/v1, so the OpenAPI document describes them.

They are deliberately permissive (``extra="allow"``, nullable wherever the column is): they
document the rows the queries return without dropping or rejecting a column the schema adds.

Three endpoints (the alert queue, one alert, the patient list) name theirs as
``response_model``. The others use ``documented(Model)``: the model is shown in the OpenAPI
document while the body stays FastAPI's plain encoding of what the endpoint returns, because
serialising through a model changes bodies clients already read (numeric columns inside
free-form JSON would turn into strings, absent keys into nulls). tests/clinic_api/
test_response_models.py checks real answers of every endpoint against its model.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class _AlertBase(_Out):
    id: int
    patient_id: uuid.UUID
    pseudonym: str
    patient_name: str | None = None
    unit_id: uuid.UUID
    rule_id: str
    condition: str | None = None
    status: str = Field(description="awaiting_confirmation, open, acknowledged, snoozed or resolved")
    severity: str = Field(description="info, low, medium, high or critical")
    title: str
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_fired_at: dt.datetime
    fire_count: int
    latest_value: float | None = None
    evidence: dict[str, Any] = Field(description="the readings and figures the rule fired on")
    snoozed_until: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    escalated_at: dt.datetime | None = None
    escalation_level: int
    resolution_suggested_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    event_type: str
    route: str = Field(description="who must act: staff, technical, patient or record")
    shown_to_staff_at: dt.datetime | None = None
    assigned_to: uuid.UUID | None = None
    escalated_to: uuid.UUID | None = None
    escalated_to_role: str | None = None
    resolution_reason: str | None = None


class AlertListItem(_AlertBase):
    """One row of the alert queue (``GET /alerts``)."""

    assigned_to_name: str | None = None
    escalated_to_name: str | None = None
    unit_code: str
    age_s: int = Field(description="seconds since the alert was opened")


class AlertEventOut(_Out):
    id: int
    event: str
    at: dt.datetime
    staff_id: uuid.UUID | None = None
    staff_name: str | None = None
    comment: str | None = None
    details: dict[str, Any]


class AlertOut(_AlertBase):
    """One alert with who acted on it: the answer of every alert action (acknowledge, comment,
    snooze, escalate, resolve, undo-resolve, claim, assign, unassign, handover)."""

    acknowledged_by: uuid.UUID | None = None
    resolved_by: uuid.UUID | None = None
    confirm_by: dt.datetime | None = None


class AlertDetail(AlertOut):
    """One alert with who acted on it and its events (``GET /alerts/{id}``)."""

    events: list[AlertEventOut]


class PatientListItem(_Out):
    """One patient of the staff member's units (``GET /patients``)."""

    id: uuid.UUID
    pseudonym: str
    display_name: str | None = None
    birth_year: int | None = None
    unit_id: uuid.UUID
    unit_code: str
    conditions: list[str]
    open_alerts: int = Field(description="open alerts in the clinical queue")
    top_severity: str | None = Field(default=None, description="most severe open or acknowledged alert")
    last_measurement_at: dt.datetime | None = None
    adherence_7d_pct: float | None = Field(default=None, description="measurements done of those due, 7 days")


def documented(model: Any, status_code: int = 200, description: str = "Successful Response") -> dict[str, Any]:
    """Route keyword arguments that show ``model`` as the ``status_code`` answer in the OpenAPI
    document and leave the body as the endpoint returns it (see the module docstring)."""
    return {"response_model": None, "responses": {status_code: {"model": model, "description": description}}}


# --- Who am I, care units, staff (admin) ---------------------------------------------------


class Me(_Out):
    """The signed-in staff member (``GET /me``)."""

    id: uuid.UUID
    subject: str
    display_name: str
    roles: list[str] = Field(description="nurse, physician, enroller, admin, auditor, technician")
    unit_ids: list[uuid.UUID]


class UnitOut(_Out):
    """A care unit (``GET /units``; ``POST /units`` answers without ``created_at``)."""

    id: uuid.UUID
    code: str
    name: str
    created_at: dt.datetime | None = None


class StaffCreated(_Out):
    """A new staff account (``POST /staff``)."""

    id: uuid.UUID
    subject: str
    display_name: str
    roles: list[str]
    unit_ids: list[uuid.UUID]


class StaffOut(StaffCreated):
    """A staff account with its units' codes (``GET /staff``, ``PATCH /staff/{id}``)."""

    active: bool
    unit_codes: list[str]


# --- Gateways and devices ------------------------------------------------------------------


class DeviceOut(_Out):
    address: str
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    kind: str | None = None
    battery_pct: int | None = None
    first_seen_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None


class _GatewayStatus(_Out):
    id: str
    serial: str | None = None
    enrolled_at: dt.datetime | None = None
    online: bool
    last_status: dict[str, Any] | None = Field(default=None, description="the gateway's last status message")
    last_status_at: dt.datetime | None = None


class GatewayListItem(_GatewayStatus):
    """A gateway kit with its patient and devices in short (``GET /gateways``)."""

    created_at: dt.datetime
    has_credentials: bool = Field(description="enrolled: it has a broker password")
    patient_id: uuid.UUID | None = None
    pseudonym: str | None = None
    unit_id: uuid.UUID | None = None
    device_count: int
    min_battery_pct: int | None = None


class GatewayDetail(GatewayListItem):
    """One gateway with its devices (``GET /gateways/{id}``)."""

    devices: list[DeviceOut]


class GatewayCreated(_Out):
    """A registered gateway kit (``POST /gateways``)."""

    id: str
    serial: str | None = None


class PatientGateway(_GatewayStatus):
    """The patient's current gateway kit."""

    assigned_from: dt.datetime


class GatewayAssigned(_Out):
    """``POST /patients/{id}/gateway``."""

    assignment_id: int
    gateway_id: str
    patient_id: uuid.UUID
    valid_from: dt.datetime


class GatewayAssignmentEnded(_Out):
    """``DELETE /patients/{id}/gateway``."""

    gateway_id: str
    patient_id: uuid.UUID
    valid_to: dt.datetime


# --- Patients, care plans, readings --------------------------------------------------------


class CarePlanOut(_Out):
    """One care-plan version (``POST /patients/{id}/care-plans``)."""

    id: int
    patient_id: uuid.UUID
    version: int
    valid_from: dt.datetime
    conditions: list[str]
    thresholds: dict[str, Any] = Field(description="rule parameter overrides by rule id, routing, confirmation")
    schedule: dict[str, Any] = Field(description="measurements per day (and local times) by kind")
    dry_weight_kg: float | None = None
    personal_best_pef: float | None = None
    spo2_target: Any = Field(default=None, description="the SpO2 target range in %")
    notes: str | None = None
    created_by: uuid.UUID | None = None
    created_at: dt.datetime


class CarePlanVersion(CarePlanOut):
    """One row of the care-plan history (``GET /patients/{id}/care-plans``)."""

    created_by_name: str | None = None


class PatientCreated(_Out):
    """An enrolled patient (``POST /patients``), with the care plan when one was given."""

    id: uuid.UUID
    pseudonym: str
    display_name: str | None = None
    birth_year: int | None = None
    unit_id: uuid.UUID
    created_at: dt.datetime
    care_plan: CarePlanOut | None = None


class PatientDetail(_Out):
    """One patient with care plan, gateway, devices and open alerts (``GET /patients/{id}``)."""

    id: uuid.UUID
    pseudonym: str
    display_name: str | None = None
    birth_year: int | None = None
    unit_id: uuid.UUID
    active: bool
    created_at: dt.datetime
    unit_code: str
    unit_name: str
    care_plan: CarePlanOut | None = None
    gateway: PatientGateway | None = None
    devices: list[DeviceOut]
    alerts: list[AlertListItem] = Field(description="open, acknowledged and snoozed alerts, as in the queue")


class SeriesPoint(_Out):
    t: dt.datetime = Field(description="the reading's time, or the bucket's centre when downsampled")
    mean: float
    min: float
    max: float
    n: int = Field(description="readings in the bucket (1 when not downsampled)")


class ObservationSeries(_Out):
    """One component over a time range (``GET /patients/{id}/observations``)."""

    component: str
    unit: str = Field(description="UCUM")
    start: dt.datetime
    end: dt.datetime
    downsampled: bool
    points: list[SeriesPoint]


class PatientSummary(_Out):
    """Condition summaries (``GET /patients/{id}/summary``); a section is present when the
    patient has the readings it is computed from."""

    patient_id: uuid.UUID
    at: dt.datetime
    cgm_14d: dict[str, Any] | None = Field(default=None, description="CGM: mean, CV, GMI, TIR/TBR/TAR, coverage")
    bp_7d: dict[str, Any] | None = Field(default=None, description="7-day home blood pressure means")
    weight: dict[str, Any] | None = Field(default=None, description="latest, 14-day trend, 7-day mean vs dry weight")
    pef: dict[str, Any] | None = Field(default=None, description="latest and 7-day PEF as % of personal best")


# --- FHIR ----------------------------------------------------------------------------------


class FhirEntry(_Out):
    fullUrl: str  # noqa: N815 - FHIR's own field name
    resource: dict[str, Any]


class FhirBundle(_Out):
    """The patient's record as a FHIR R4 ``Bundle`` of type collection (``GET /patients/{id}/fhir``)."""

    resourceType: str  # noqa: N815 - FHIR's own field name
    id: str
    type: str
    timestamp: dt.datetime
    entry: list[FhirEntry]


class FhirDiagnosticReport(_Out):
    """The monthly summary as a FHIR R4 ``DiagnosticReport`` (``GET /patients/{id}/fhir/summary``)."""

    resourceType: str  # noqa: N815 - FHIR's own field name
    id: str
    status: str
    code: dict[str, Any]
    subject: dict[str, Any]
    effectivePeriod: dict[str, Any]  # noqa: N815 - FHIR's own field name
    issued: dt.datetime
    contained: list[dict[str, Any]] = Field(default_factory=list, description="one Observation per kind")
    result: list[dict[str, Any]] = Field(default_factory=list)
    performer: list[dict[str, Any]] = Field(default_factory=list)


# --- Audit, analytics, replays -------------------------------------------------------------


class AuditRow(_Out):
    """One audit-log row (``GET /audit``)."""

    id: int
    at: dt.datetime
    staff_id: uuid.UUID | None = None
    subject: str | None = None
    staff_name: str | None = None
    action: str
    resource: str
    patient_id: uuid.UUID | None = None
    pseudonym: str | None = None
    remote_addr: str | None = None
    reason: str | None = None
    detail: dict[str, Any]


class BurdenFigures(_Out):
    alerts: int = Field(description="alerts shown to staff in the window")
    alerts_per_patient_month: float | None = None
    acknowledged_share: float | None = None
    resolved_no_action_share: float | None = None
    median_minutes_to_acknowledge: float | None = None
    not_confirmed: int = Field(description="opened in the window and closed as not confirmed")


class BurdenByEventType(BurdenFigures):
    event_type: str


class BurdenByRule(_Out):
    rule_id: str
    route: str
    episodes: int
    episodes_per_patient_month: float | None = None


class AlertBurden(_Out):
    """The alert burden of one unit over the last ``days`` days (``GET /units/{id}/alert-burden``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    unit_id: uuid.UUID
    unit_code: str
    unit_name: str
    days: int
    from_: dt.datetime = Field(alias="from")
    to: dt.datetime
    patients: int
    patient_months: float
    total: BurdenFigures
    by_event_type: list[BurdenByEventType]
    by_rule: list[BurdenByRule]


class ReplayQueued(_Out):
    """An accepted replay request (``POST /units/{id}/replays``)."""

    id: int
    unit_id: uuid.UUID
    requested_at: dt.datetime
    status: str = Field(description="queued, running, done or failed")


class _ReplayBase(ReplayQueued):
    requested_by: str = Field(description="the requesting staff member's name")
    days: int
    condition: str | None = None
    proposal: dict[str, dict[str, float]] = Field(description="proposed parameters by rule id")
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = None


class ReplayListItem(_ReplayBase):
    """One of the unit's latest requests (``GET /units/{id}/replays``)."""

    caught: int | None = None
    missed: int | None = None


class ReplayOut(_ReplayBase):
    """One request with its result once done (``GET /replays/{id}``)."""

    result: dict[str, Any] | None = None
    unit_code: str
    unit_name: str
