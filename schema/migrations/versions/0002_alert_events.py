"""Alerts as clinical events: one staff-facing alert per patient and physiological event.

* ``alert`` becomes the *event*: ``event_type`` (``device_profiles.vocabulary.EventType``)
  names the family (hypoglycaemia, fluid retention, ...); ``rule_id`` stays as the leading
  rule (the most severe one firing). At most one non-resolved alert per (patient,
  event_type) replaces "one per (patient, rule)".
* ``route`` says who must act (``Route``: staff, patient, technical, record);
  ``shown_to_staff_at`` is when it entered a staff queue (never, for patient-only or
  record-only events, and not while it awaits a confirming repeat measurement);
  ``awaiting_confirmation`` is a status with ``confirm_by`` as its deadline.
* Staff work on an alert: ``assigned_to``, ``escalated_to`` / ``escalated_to_role``,
  ``resolution_reason`` (``ResolutionReason``).
* ``alert_finding`` keeps every rule's finding (one current row per patient and rule,
  updated while it lasts, ``cleared_at`` when it stops) for audit and analytics, linked to
  the event that carried it.
* ``patient_message`` is the outbox of messages to the patient's gateway (measure again,
  reminders, receipts, contact care, call 1177/112), with delivery and seen acknowledgements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEVERITIES = "'info','low','medium','high','critical'"
ROUTES = "'staff','patient','technical','record'"
EVENTS = (
    "'opened','updated','escalated_severity','acknowledged','commented','snoozed','escalated',"
    "'resolution_suggested','resolved','reopened','confirmation_requested','confirmed','not_confirmed',"
    "'routed','assigned','unassigned','handover','resolve_undone','message_sent','message_delivered',"
    "'message_seen','message_expired'"
)
MESSAGE_LEVELS = "'receipt','measure_again','reminder','contact_care','call_1177_or_112'"

UPGRADE = f"""
ALTER TABLE alert
    ADD COLUMN event_type         text,
    ADD COLUMN route              text NOT NULL DEFAULT 'staff' CHECK (route IN ({ROUTES})),
    ADD COLUMN shown_to_staff_at  timestamptz,
    ADD COLUMN confirm_by         timestamptz,
    ADD COLUMN assigned_to        uuid REFERENCES staff(id),
    ADD COLUMN escalated_to       uuid REFERENCES staff(id),
    ADD COLUMN escalated_to_role  text CHECK (escalated_to_role IN ('nurse','physician')),
    ADD COLUMN resolution_reason  text;
-- Alerts raised before events existed were one per rule: each is its own event.
UPDATE alert SET event_type = rule_id, shown_to_staff_at = opened_at;
ALTER TABLE alert ALTER COLUMN event_type SET NOT NULL;

ALTER TABLE alert DROP CONSTRAINT alert_status_check;
ALTER TABLE alert ADD CONSTRAINT alert_status_check
    CHECK (status IN ('awaiting_confirmation','open','acknowledged','snoozed','resolved'));
ALTER TABLE alert ADD CONSTRAINT alert_confirm_by_check
    CHECK (status <> 'awaiting_confirmation' OR confirm_by IS NOT NULL);

DROP INDEX alert_one_open_idx;
CREATE UNIQUE INDEX alert_one_open_idx ON alert (patient_id, event_type) WHERE status <> 'resolved';
CREATE INDEX alert_staff_queue_idx ON alert (status, severity, shown_to_staff_at)
    WHERE shown_to_staff_at IS NOT NULL;
CREATE INDEX alert_assigned_idx ON alert (assigned_to) WHERE assigned_to IS NOT NULL;
CREATE INDEX alert_escalated_to_idx ON alert (escalated_to) WHERE escalated_to IS NOT NULL;

ALTER TABLE alert_event DROP CONSTRAINT alert_event_event_check;
ALTER TABLE alert_event ADD CONSTRAINT alert_event_event_check CHECK (event IN ({EVENTS}));

CREATE TABLE alert_finding (
    id            bigserial PRIMARY KEY,
    alert_id      bigint REFERENCES alert(id) ON DELETE SET NULL,
    patient_id    uuid NOT NULL REFERENCES patient(id),
    rule_id       text NOT NULL,
    route         text NOT NULL CHECK (route IN ({ROUTES})),
    severity      text NOT NULL CHECK (severity IN ({SEVERITIES})),
    first_at      timestamptz NOT NULL,
    last_at       timestamptz NOT NULL,
    fire_count    integer NOT NULL DEFAULT 1,
    latest_value  double precision,
    evidence      jsonb NOT NULL DEFAULT '{{}}',
    cleared_at    timestamptz
);
CREATE UNIQUE INDEX alert_finding_current_idx ON alert_finding (patient_id, rule_id) WHERE cleared_at IS NULL;
CREATE INDEX alert_finding_alert_idx ON alert_finding (alert_id);
CREATE INDEX alert_finding_rule_time_idx ON alert_finding (rule_id, first_at);

CREATE TABLE patient_message (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id    uuid NOT NULL REFERENCES patient(id),
    gateway_id    text REFERENCES gateway(id),
    alert_id      bigint REFERENCES alert(id) ON DELETE SET NULL,
    level         text NOT NULL CHECK (level IN ({MESSAGE_LEVELS})),
    kind          text,
    message_sv    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    sent_at       timestamptz,
    delivered_at  timestamptz,
    seen_at       timestamptz
);
CREATE INDEX patient_message_unsent_idx ON patient_message (created_at) WHERE sent_at IS NULL;
CREATE INDEX patient_message_patient_idx ON patient_message (patient_id, created_at);
CREATE INDEX patient_message_alert_idx ON patient_message (alert_id) WHERE alert_id IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    raise NotImplementedError("restore from backup: events cannot be split back into per-rule alerts")
