"""subscriptions.language: the language a person signed up in

A person who signs up in English on a Japanese list (the form's language switch, ``?lang=en``,
or their browser's Accept-Language) is answered in English from then on: the confirmation mail,
the confirm and unsubscribe pages, and campaigns (their language's version, and the legal footer
in their language). NULL, as for every subscription before this revision: the list's language.

Revision ID: 3b7e52c4d1a9
Revises: 941aae4236c1
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b7e52c4d1a9"
down_revision: str | None = "941aae4236c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place (ALTER TABLE ADD COLUMN), no rebuild.
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("language", sa.String(length=2), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by rebuilding the table: keep its AUTOINCREMENT (941aae4236c1).
    with op.batch_alter_table(
        "subscriptions", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_column("language")
