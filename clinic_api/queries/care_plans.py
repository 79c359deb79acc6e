"""Care plans: the current version, the history, and a new version."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff
from clinic_api.models import CarePlanIn
from clinic_api.queries._db import Row, _row, _rows


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
