"""consent event ids are never reused (SQLite AUTOINCREMENT)

A purged consent event leaves a ledger tombstone under the same id (CR-2, CR-3): events and
tombstones share one id space, in which the verifier walks each sender's chain. SQLite without
AUTOINCREMENT hands out max(id) + 1, so once the newest events are purged their ids come back
and a new event would sort before the tombstones it chains onto (and a later purge of it would
collide with a tombstone's key). PostgreSQL sequences never go back: nothing to do there.

Revision ID: d5fdd84b98bd
Revises: 101b44f54c9c
Create Date: 2026-11-22 08:14:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d5fdd84b98bd"
down_revision: str | None = "101b44f54c9c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot add AUTOINCREMENT in place: rebuild the table (rows, indexes and foreign
    # keys copied). sqlite_sequence starts from the highest id copied.
    with op.batch_alter_table(
        "consent_events",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
