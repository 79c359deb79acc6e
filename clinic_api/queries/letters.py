"""What the patient's monthly letter (and the FHIR summary) reads: the readings of a month and
the month before, the measurements per kind, and the care plan's schedule."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from clinic_api.queries.care_plans import care_plan_current

Values = dict[tuple[str, str], list[float]]  # (kind, component) → values in time order


def month_values(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    kinds: Sequence[str],
    *,
    previous_start: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
) -> tuple[Values, Values]:
    """(this month's, the previous month's) accepted values of ``kinds``, by (kind, component)."""
    current: Values = {}
    previous: Values = {}
    rows = conn.execute(
        """SELECT kind, component, measured_at >= %(start)s, value FROM observation
           WHERE patient_id = %(patient)s AND measured_at >= %(prev)s AND measured_at < %(end)s
             AND kind = ANY(%(kinds)s) AND status <> 'rejected' AND value IS NOT NULL
           ORDER BY measured_at""",
        {"patient": patient_id, "prev": previous_start, "start": start, "end": end, "kinds": list(kinds)},
        binary=True,
    ).fetchall()
    for kind, component, this_month, v in rows:
        (current if this_month else previous).setdefault((kind, component), []).append(float(v))
    return current, previous


def readings_per_kind(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, kinds: Sequence[str], start: dt.datetime, end: dt.datetime
) -> dict[str, int]:
    """Measurements (readings, not values: one blood pressure is one) per kind in [start, end)."""
    return {
        str(kind): int(n)
        for kind, n in conn.execute(
            """SELECT kind, count(DISTINCT reading_id) FROM observation
               WHERE patient_id = %s AND measured_at >= %s AND measured_at < %s AND kind = ANY(%s)
                 AND status <> 'rejected' GROUP BY kind""",
            (patient_id, start, end, list(kinds)),
        ).fetchall()
    }


def schedule_per_day(conn: psycopg.Connection[Any], patient_id: uuid.UUID) -> dict[str, int]:
    """Measurements per day by kind from the current care plan ({} without one)."""
    plan = care_plan_current(conn, patient_id)
    schedule = (plan or {}).get("schedule") or {}
    return {str(k): int(v.get("per_day", 1)) for k, v in schedule.items()}
