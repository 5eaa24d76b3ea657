"""ids are never reused on SQLite either (AUTOINCREMENT on every table with an integer id)

The audit log names its targets by id (DS-6), exports and compliance reports cite subscriber,
subscription, delivery, campaign, list, sender, template, import and key ids. SQLite without
AUTOINCREMENT hands out max(id) + 1, so once the newest subscriber is erased (DS-3) the next one
gets its id, and "subscriber 7" in the audit log names two people. PostgreSQL sequences never go
back: nothing to do there. consent_events got the same treatment in d5fdd84b98bd.

Revision ID: 941aae4236c1
Revises: f62cb5e9fac3
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "941aae4236c1"
down_revision: str | None = "f62cb5e9fac3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table whose primary key is an integer id the application hands out.
TABLES = (
    "senders",
    "mailing_lists",
    "templates",
    "subscribers",
    "subscriptions",
    "suppressions",
    "campaigns",
    "deliveries",
    "outbox_messages",
    "imports",
    "import_items",
    "api_keys",
    "audit_log",
    "registered_wordings",
    "suppression_lifts",
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot add AUTOINCREMENT in place: rebuild each table (rows, indexes and foreign
    # keys copied; alembic's own connection runs without PRAGMA foreign_keys, so dropping the
    # old parent table deletes nothing). sqlite_sequence starts from the highest id copied.
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
