"""campaign_variants: a campaign's version for the readers of one language

A campaign names one template, its version for the list's language; a variant names another
template for the subscribers of one language (``ja`` or ``en``). When sending starts, each
variant's subject, HTML and text are copied here, as the main template's are into the campaign,
so later edits of the templates cannot change a campaign that is going out.

Revision ID: 8d2f6a1c9e47
Revises: 3b7e52c4d1a9
Create Date: 2026-12-05 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "8d2f6a1c9e47"
down_revision: str | None = "3b7e52c4d1a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", app.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_variants_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_campaign_variants_template_id_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_variants")),
        sa.UniqueConstraint(
            "campaign_id", "language", name=op.f("uq_campaign_variants_campaign_id_language")
        ),
        # Ids are never reused, on SQLite either (941aae4236c1).
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("campaign_variants")
