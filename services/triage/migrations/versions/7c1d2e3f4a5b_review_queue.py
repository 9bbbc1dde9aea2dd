"""review queue: triage_reviews, corrections kept on triage_cases

Revision ID: 7c1d2e3f4a5b
Revises: 65337ed05348
Create Date: 2026-11-30 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '7c1d2e3f4a5b'
down_revision: str | None = '65337ed05348'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('triage_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('cues', sa.JSON(), nullable=True),
    sa.Column('grid_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('dispute_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirm_due', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('correction', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('triage_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triage_reviews_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_triage_reviews_status'), ['status'], unique=False)
    with op.batch_alter_table('triage_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrected_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('corrected_severity', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('triage_cases', schema=None) as batch_op:
        batch_op.drop_column('corrected_severity')
        batch_op.drop_column('corrected_type')
    with op.batch_alter_table('triage_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triage_reviews_status'))
        batch_op.drop_index(batch_op.f('ix_triage_reviews_case_id'))
    op.drop_table('triage_reviews')
