"""suppression_lifts: a confirmed opt-in sets a suppression aside for its own list only (OO-6)

Until now the person's confirmation of one list deleted every suppression covering that list:
the sender-wide one and the global one (erasure, hard bounce) too, so the address became
mailable on every other list of the sender, and for every other sender, without the person
agreeing. From now on the suppression stays, and the confirmation records one lift per
suppression it sets aside, for that list alone; the consent gate reads both.

Suppressions already deleted by the old rule cannot be told apart from ones never written, so
they are not brought back here.

Revision ID: f62cb5e9fac3
Revises: 8149cb6a8a32
Create Date: 2026-12-04 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "f62cb5e9fac3"
down_revision: str | None = "8149cb6a8a32"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppression_lifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suppression_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("confirm_event_id", sa.Integer(), nullable=False),
        sa.Column("created_at", app.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["suppression_id"],
            ["suppressions.id"],
            name=op.f("fk_suppression_lifts_suppression_id_suppressions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["mailing_lists.id"],
            name=op.f("fk_suppression_lifts_list_id_mailing_lists"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_lifts")),
        sa.UniqueConstraint(
            "suppression_id",
            "list_id",
            name=op.f("uq_suppression_lifts_suppression_id_list_id"),
        ),
    )


def downgrade() -> None:
    # Dropping the lifts makes every suppression block everywhere again: the safe direction.
    op.drop_table("suppression_lifts")
