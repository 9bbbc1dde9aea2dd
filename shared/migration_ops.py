"""Schema steps every service's migrations share (the plumbing's tables are the same in each).

Each function is one step of history, called by a dated revision in every service: never
change what one does; a later step is a new function.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def outbox_deletes_sent_rows() -> None:
    """2026-12: the relay deletes a row once the broker acknowledged it. Rows sent before
    go now; `published_at` and its index, which only told sent rows from unsent, go too."""
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.drop_index("ix_outbox_unpublished")
        batch.drop_column("published_at")


def outbox_keeps_sent_rows() -> None:
    """The downgrade of `outbox_deletes_sent_rows` (rows deleted stay deleted)."""
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_outbox_unpublished", ["published_at", "id"], unique=False)
