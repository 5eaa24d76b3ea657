"""API keys an operator can manage: expiry, last use, senders a key is bound to; templates of
one sender

- ``api_keys.expires_at`` (an expired key is refused like an unknown one) and
  ``api_keys.last_used_at`` (written at most once a minute per key); ``revoked_at`` exists.
- ``api_key_senders``: the senders a key acts for; a key without rows acts for every sender.
- ``templates.sender_id``: NULL for a template shared by every sender (as every template was
  before), else the sender whose bound keys may see and use it (DS-6).

Revision ID: 8149cb6a8a32
Revises: 4dc50d471e74
Create Date: 2026-12-04 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UtcDateTime

revision: str = "8149cb6a8a32"
down_revision: str | None = "4dc50d471e74"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", UtcDateTime(timezone=True), nullable=True))
    op.create_table(
        "api_key_senders",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_senders_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_api_key_senders_sender_id_senders")
        ),
        sa.PrimaryKeyConstraint("api_key_id", "sender_id", name=op.f("pk_api_key_senders")),
    )
    with op.batch_alter_table("api_key_senders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_senders_sender_id"), ["sender_id"], unique=False
        )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_templates_sender_id"), ["sender_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_templates_sender_id_senders"), "senders", ["sender_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_templates_sender_id_senders"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_templates_sender_id"))
        batch_op.drop_column("sender_id")
    with op.batch_alter_table("api_key_senders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_senders_sender_id"))
    op.drop_table("api_key_senders")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
