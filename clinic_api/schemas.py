"""Response models of the main read endpoints, so the OpenAPI document describes them.

They are deliberately permissive (``extra="allow"``, nullable wherever the column is): they
document the rows the queries return without dropping or rejecting a column the schema adds.
Types follow what psycopg hands back, so serialisation is the same as without a model.
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


class AlertDetail(_AlertBase):
    """One alert with who acted on it and its events (``GET /alerts/{id}``)."""

    acknowledged_by: uuid.UUID | None = None
    resolved_by: uuid.UUID | None = None
    confirm_by: dt.datetime | None = None
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
