"""workflow_executors: each replica's heartbeat, for taking over a dead replica's workflows

Revision ID: 5b1f0c3e7a21
Revises: a0201316e289
Create Date: 2026-12-02 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import budapp.core.db

revision: str = "5b1f0c3e7a21"
down_revision: str | None = "a0201316e289"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_executors",
        sa.Column("executor_id", sa.String(length=255), nullable=False),
        sa.Column("heartbeat_at", budapp.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_workflow_executors")),
    )
    with op.batch_alter_table("workflow_executors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_executors_heartbeat_at"), ["heartbeat_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_executors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_executors_heartbeat_at"))
    op.drop_table("workflow_executors")
