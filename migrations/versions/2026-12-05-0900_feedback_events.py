"""feedback_events: bounces, complaints and mailed refusals, tied to what they answer

Revision ID: 5e1f0c2b7a93
Revises: 3b7d2e9c5a14
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "5e1f0c2b7a93"
down_revision: str | None = "3b7d2e9c5a14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("reporter", sa.String(length=200), nullable=True),
        sa.Column("consent_event_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", app.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_feedback_events_dedupe_key")),
        # Ids are never reused, on SQLite either (941aae4236c1).
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_feedback_events_address_hash_received_at",
        "feedback_events",
        ["address_hash", "received_at"],
    )
    op.create_index(
        "ix_feedback_events_campaign_id_kind", "feedback_events", ["campaign_id", "kind"]
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_events_campaign_id_kind", table_name="feedback_events")
    op.drop_index("ix_feedback_events_address_hash_received_at", table_name="feedback_events")
    op.drop_table("feedback_events")
