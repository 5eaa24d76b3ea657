"""a charset per list: utf-8, or iso-2022-jp for readers on Japanese carrier addresses

``mailing_lists.charset`` says which charset the list's mails (campaigns and the confirmation
mail) are written in. Every existing list keeps UTF-8, the charset its mails have always had.

Revision ID: 3b7d2e9c5a14
Revises: 8d2f6a1c9e47
Create Date: 2026-12-05 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b7d2e9c5a14"
down_revision: str | None = "8d2f6a1c9e47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a column with a constant default needs no rebuild on SQLite.
    with op.batch_alter_table("mailing_lists", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("charset", sa.String(length=16), server_default="utf-8", nullable=False)
        )


def downgrade() -> None:
    # Dropping it rebuilds the table on SQLite: keep its ids never reused (941aae4236c1).
    with op.batch_alter_table(
        "mailing_lists", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("charset")
