"""registered consent wordings per list, and the list setting that requires them

An operator registers the wordings its own signup forms show for a list (each text stored once
in consent_texts, by hash); a list can require a JSON signup to carry one of them (CR-1, CC-2).
``mailing_lists.require_registered_wording`` is NULL for "the default", which follows
double_opt_in: existing single opt-in lists therefore require registered wordings after this
migration, existing double opt-in lists do not.

Revision ID: 4dc50d471e74
Revises: 7c3e9a1f4b20
Create Date: 2026-12-04 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "4dc50d471e74"
down_revision: str | None = "7c3e9a1f4b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailing_lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_registered_wording", sa.Boolean(), nullable=True))
    op.create_table(
        "registered_wordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("consent_text_hash", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("created_at", app.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", app.models.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["mailing_lists.id"],
            name=op.f("fk_registered_wordings_list_id_mailing_lists"),
        ),
        sa.ForeignKeyConstraint(
            ["consent_text_hash"],
            ["consent_texts.hash"],
            name=op.f("fk_registered_wordings_consent_text_hash_consent_texts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_wordings")),
        sa.UniqueConstraint(
            "list_id", "version", name=op.f("uq_registered_wordings_list_id_version")
        ),
        sa.UniqueConstraint(
            "list_id",
            "consent_text_hash",
            name=op.f("uq_registered_wordings_list_id_consent_text_hash"),
        ),
    )


def downgrade() -> None:
    op.drop_table("registered_wordings")
    with op.batch_alter_table("mailing_lists", schema=None) as batch_op:
        batch_op.drop_column("require_registered_wording")
