"""deliveries: an index that hands out a campaign's due rows in id order

A worker claims the first due deliveries of a campaign by id. With equality on the campaign and
the status, this index yields them already in id order, so a claim reads about as many rows as it
takes. PostgreSQL could not get that order from (campaign_id, status, next_attempt_at) and
sorted every queued row of the campaign, with the gate joined in, at every claim.

Revision ID: 7c3e9a1f4b20
Revises: d5fdd84b98bd
Create Date: 2026-11-22 13:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c3e9a1f4b20"
down_revision: str | None = "d5fdd84b98bd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_campaign_id_status_id", "deliveries", ["campaign_id", "status", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_campaign_id_status_id", table_name="deliveries")
