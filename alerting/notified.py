"""Loading for the notify path: a few named patients, by index, whatever the region's size.

``load.load_cohort`` reads ``care_plan_current``, a DISTINCT ON view: for any patient list
PostgreSQL scans and sorts every care plan of the region, then keeps the few it needs
(10-30 ms at 5,000 patients, growing with the region), on every notification. Here the
newest care plan of each named patient is one index probe (``LIMIT 1`` on
``care_plan (patient_id, version)``), so a notify batch costs what its own patients cost.
The result is the same ``Cohort`` (tests/alerting/test_notified.py compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from alerting.cohort import Cohort
from alerting.load import cohort_from_rows

NOTIFIED_COHORT_SQL = """
SELECT p.id::text, p.pseudonym, cp.conditions, cp.thresholds, cp.schedule,
       cp.dry_weight_kg, cp.personal_best_pef, cp.spo2_target,
       extract(year FROM now() AT TIME ZONE 'Europe/Stockholm')::int - p.birth_year,
       (SELECT extract(epoch FROM min(c.valid_from))::float8 FROM care_plan c WHERE c.patient_id = p.id)
FROM unnest(%s::uuid[]) AS u(id)
JOIN patient p ON p.id = u.id
CROSS JOIN LATERAL (
    SELECT * FROM care_plan c WHERE c.patient_id = p.id ORDER BY c.version DESC LIMIT 1
) cp
WHERE p.active
"""


def load_notified_cohort(conn: psycopg.Connection[Any], patient_ids: Sequence[str]) -> Cohort:
    """The active named patients with a care plan, as ``load.load_cohort(conn, patient_ids)`` gives them."""
    rows = conn.execute(NOTIFIED_COHORT_SQL, (sorted(set(patient_ids)),)).fetchall()
    return cohort_from_rows(rows)
