"""Threshold replay requests: clinic_api queues them, the alerting service runs them.

The monitoring team proposes care-plan thresholds on the analytics page; ``replay_request``
carries the proposal to the alerting service (the two packages meet only in the database)
and the result back. ``proposal`` is rule id → {parameter: number}, as in
``care_plan.thresholds``; ``result`` is ``alerting.replay.ReplayResult.as_dict()``.

The service claims one ``queued`` row at a time (``FOR UPDATE SKIP LOCKED``, so several
alerting processes never run the same request), marks it ``running`` and ends it ``done``
with a result or ``failed`` with a short error text.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES = "'queued','running','done','failed'"

UPGRADE = f"""
CREATE TABLE replay_request (
    id            bigserial PRIMARY KEY,
    unit_id       uuid NOT NULL REFERENCES care_unit(id),
    requested_by  uuid NOT NULL REFERENCES staff(id),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    days          integer NOT NULL CHECK (days BETWEEN 1 AND 90),
    condition     text,
    proposal      jsonb NOT NULL CHECK (jsonb_typeof(proposal) = 'object'),
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ({STATUSES})),
    started_at    timestamptz,
    finished_at   timestamptz,
    result        jsonb,
    error         text,
    -- A finished request has its outcome: a result when done, an error when failed.
    CHECK (status <> 'done' OR result IS NOT NULL),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
-- The service's claim: the oldest queued request.
CREATE INDEX replay_request_queue_idx ON replay_request (status, requested_at);
-- The page's list: a unit's latest requests.
CREATE INDEX replay_request_unit_idx ON replay_request (unit_id, requested_at DESC);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # Requests and their results are derived data: dropping them loses nothing clinical.
    op.execute("DROP TABLE replay_request")
