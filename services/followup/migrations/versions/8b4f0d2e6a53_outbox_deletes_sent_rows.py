"""the outbox holds only unsent rows: the relay deletes what the broker acknowledged

Revision ID: 8b4f0d2e6a53
Revises: f2b8d4a6c1e3
Create Date: 2026-12-02 22:00:00

Marking a sent row rewrote it and moved its entry in `ix_outbox_unpublished`, and the table
kept every event the service ever sent (with its sealed payloads) for ever. See
shared.migration_ops.outbox_deletes_sent_rows.
"""

from collections.abc import Sequence

from shared.migration_ops import outbox_deletes_sent_rows, outbox_keeps_sent_rows

revision: str = "8b4f0d2e6a53"
down_revision: str | None = "f2b8d4a6c1e3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_deletes_sent_rows()


def downgrade() -> None:
    outbox_keeps_sent_rows()
