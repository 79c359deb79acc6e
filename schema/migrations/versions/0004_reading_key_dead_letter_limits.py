"""The reading id alone dedupes readings; dead letters record size and hash of what arrived.

* ``reading_key``: one row per stored reading, keyed by ``reading_id`` alone. The
  observation and reading_raw keys include ``measured_at`` (TimescaleDB wants the time
  column in every unique index of a hypertable), so a reading read twice with two
  timestamps (device clock unset, then corrected on a re-read) was stored twice. Ingest
  inserts here first and stores the rows only of readings that got a key; the first
  stored ``measured_at`` stays. Filled from the observations stored so far (the earliest
  ingested copy of each reading; older second copies stay as they are).
* ``dead_letter.payload_bytes`` and ``payload_sha256``: the size and hash of the whole
  message, for a ``too_large`` one whose stored payload keeps only its beginning.
  Retention (``ingest.retention``) deletes by ``received_at`` through the existing
  ``dead_letter_received_idx``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE reading_key (
    reading_id   uuid PRIMARY KEY,
    gateway_id   text NOT NULL,
    measured_at  timestamptz NOT NULL
);
INSERT INTO reading_key (reading_id, gateway_id, measured_at)
SELECT DISTINCT ON (reading_id) reading_id, gateway_id, measured_at
FROM observation
ORDER BY reading_id, ingested_at, measured_at;

ALTER TABLE dead_letter
    ADD COLUMN payload_bytes   integer,
    ADD COLUMN payload_sha256  bytea;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE reading_key; ALTER TABLE dead_letter DROP COLUMN payload_bytes, DROP COLUMN payload_sha256")
