"""What alerting last published as each gateway's retained config.

* ``gateway_config_state``: one row per gateway, the ``version`` (hash) of the retained
  ``GatewayConfig`` last accepted by the broker, the config itself (so support can see
  what a gateway was told) and when. Alerting compares a freshly built config's hash with
  it and publishes only what changed, so a restart does not republish every gateway.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE gateway_config_state (
    gateway_id    text PRIMARY KEY REFERENCES gateway(id) ON DELETE CASCADE,
    hash          text NOT NULL,
    config        jsonb NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE gateway_config_state")
