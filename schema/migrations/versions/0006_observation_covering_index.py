"""The per-patient series index carries each reading's value and status.

``observation_patient_idx`` (patient, component, time) now INCLUDEs ``value`` and
``status``, so a patient's series over a window (the clinic's charts, the 90-day CGM
chart's ~26,000 readings, the rules' per-patient probes) is an index-only scan. Without it
each reading costs a heap page: ingest interleaves every patient's rows in time, so one
patient's 90 days of CGM lie on ~22,000 different heap pages (benchmarks/bench_api.py:
~1.2 s of the request under load; index-only, a few hundred index pages). The index is
replaced, not added, so ingest maintains no extra index; it keeps its name.

``observation_rejected_idx`` is a partial index on the rejected readings only (rare), for
the patient page's "kept but not used" list, which otherwise walks every reading of the
patient's window through the heap (~0.75 s for a CGM patient's 90 days under load).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX observation_patient_cover_idx ON observation (patient_id, component, measured_at DESC)"
        " INCLUDE (value, status)"
    )
    op.execute("DROP INDEX observation_patient_idx")
    op.execute("ALTER INDEX observation_patient_cover_idx RENAME TO observation_patient_idx")
    op.execute(
        "CREATE INDEX observation_rejected_idx ON observation (patient_id, measured_at DESC) WHERE status = 'rejected'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX observation_rejected_idx")
    op.execute("CREATE INDEX observation_patient_plain_idx ON observation (patient_id, component, measured_at DESC)")
    op.execute("DROP INDEX observation_patient_idx")
    op.execute("ALTER INDEX observation_patient_plain_idx RENAME TO observation_patient_idx")
