"""Columnar loading: care plans into a Cohort, observations into sorted numpy series.

One query per kind group over its window (CGM: 14 days plus a margin; all spot kinds:
the 29-day day grid), ordered by (patient, component, time) so the arrays arrive
nearly sorted. Rejected observations are never loaded, so no rule can fire on them;
censored sensor values become -inf (LOW) / +inf (HIGH).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from alerting.cohort import Cohort
from alerting.rules import GRID_DAYS
from alerting.series import SEC_PER_DAY, Dataset, Series

log = logging.getLogger(__name__)

# (kinds, days of history). CGM is dense, so it gets only what its rules read.
KIND_GROUPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("glucose_cgm",), 14.5),
    (
        (
            "blood_pressure",
            "glucose_capillary",
            "weight",
            "spo2",
            "temperature",
            "spirometry",
            "symptoms",
        ),
        GRID_DAYS + 1.0,
    ),
)

COHORT_SQL = """
SELECT p.id::text, p.pseudonym, cp.conditions, cp.thresholds, cp.schedule,
       cp.dry_weight_kg, cp.personal_best_pef, cp.spo2_target,
       extract(year FROM now() AT TIME ZONE 'Europe/Stockholm')::int - p.birth_year,
       (SELECT extract(epoch FROM min(c.valid_from))::float8 FROM care_plan c WHERE c.patient_id = p.id)
FROM patient p JOIN care_plan_current cp ON cp.patient_id = p.id
WHERE p.active {where}
"""


def _schedule_per_day(schedule: Any) -> dict[str, float]:
    """Expected readings per day per kind from the care plan's schedule.

    Accepts {"weight": 1} or {"weight": {"per_day": 1}}; anything else counts as 1/day
    when present, so an unfamiliar schedule shape still enables the no-data rules.
    """
    out: dict[str, float] = {}
    if not isinstance(schedule, dict):
        return out
    for kind, spec in schedule.items():
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            out[kind] = float(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("per_day"), int | float):
            out[kind] = float(spec["per_day"])
        elif spec:
            out[kind] = 1.0
    return out


def load_cohort(conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None = None) -> Cohort:
    if patient_ids is None:
        rows = conn.execute(COHORT_SQL.format(where="")).fetchall()
    else:
        rows = conn.execute(COHORT_SQL.format(where="AND p.id = ANY(%s::uuid[])"), (list(patient_ids),)).fetchall()
    # Sorted in Python, not by the server's collation: the loader maps ids with searchsorted.
    rows = sorted(rows, key=lambda r: str(r[0]))
    return Cohort.build(
        [r[0] for r in rows],
        [r[2] or [] for r in rows],
        dry_weight_kg=[r[5] for r in rows],
        personal_best_pef=[r[6] for r in rows],
        hypercapnic=[r[7] == "hypercapnic" for r in rows],
        thresholds=[r[3] if isinstance(r[3], dict) else {} for r in rows],
        schedule=[_schedule_per_day(r[4]) for r in rows],
        pseudonyms=[r[1] for r in rows],
        age_years=[r[8] for r in rows],
        monitored_since=[r[9] for r in rows],
    )


def load_dataset(conn: psycopg.Connection[Any], cohort: Cohort, now: float) -> Dataset:
    """Every series the rules read, for the cohort's patients, as of ``now`` (epoch seconds)."""
    if cohort.n == 0:
        return {}
    ids = np.asarray(cohort.patient_ids)
    parts: dict[str, list[tuple[Any, Any, Any]]] = {}
    for kinds, days in KIND_GROUPS:
        # One row per (series, patient) with the readings as float8 arrays: psycopg's binary
        # loader turns those into lists in C, far faster than one Python tuple per reading.
        # Censored values become ±Infinity here, so the arrays need no second column.
        cur = conn.cursor(binary=True)
        cur.execute(
            """
            SELECT kind || '.' || component, patient_id::text,
                   array_agg(extract(epoch FROM measured_at)::float8 ORDER BY measured_at),
                   array_agg(CASE censored WHEN 'low' THEN '-Infinity'::float8
                                           WHEN 'high' THEN 'Infinity'::float8
                                           ELSE coalesce(value, 'NaN'::float8) END ORDER BY measured_at)
            FROM observation
            WHERE kind = ANY(%s) AND patient_id = ANY(%s::uuid[])
              AND measured_at > to_timestamp(%s) AND measured_at <= to_timestamp(%s)
              AND status <> 'rejected'
            GROUP BY 1, 2
            """,
            (list(kinds), cohort.patient_ids, now - days * SEC_PER_DAY, now),
        )
        for key, pid, times, values in cur:
            i = int(np.searchsorted(ids, pid))  # cohort ids are sorted, like the loader sorted them
            t = np.asarray(times, dtype=np.float64)
            parts.setdefault(str(key), []).append(
                (np.full(len(t), i, dtype=np.int64), t, np.asarray(values, dtype=np.float64))
            )
    data = {
        k: Series.build(
            np.concatenate([p for p, _, _ in v]),
            np.concatenate([t for _, t, _ in v]),
            np.concatenate([x for _, _, x in v]),
        )
        for k, v in parts.items()
    }
    log.debug("loaded %d series, %d values for %d patients", len(data), sum(len(s) for s in data.values()), cohort.n)
    return data
