"""A BRIN index on ``observation (ingested_at)`` for the sweep's incremental read.

An alerting worker keeps its region's arrays between sweeps and reads only the rows
ingested since its last read (``alerting.region_cache``). Ingest appends rows in
``ingested_at`` order, so the heap (each TimescaleDB chunk's heap) is physically ordered
by it and a BRIN index of a few pages lets that read skip all but the newest block
ranges; a B-tree on every row would cost ingest an index insertion per observation.
``autosummarize``: a block range is summarized (by autovacuum) as soon as it fills, so the
unsummarized tail that every read must scan stays a few ranges, not everything since the
last vacuum. On TimescaleDB the index is created on the hypertable, which creates it on
every chunk.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX observation_ingested_brin ON observation USING brin (ingested_at) WITH (autosummarize = on)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX observation_ingested_brin")
