"""models and datasets: when the storage sweeper deleted a soft-deleted one's stored files

Two nullable columns (no rewrite of either table on PostgreSQL): the sweeper marks what it has
purged, so it does not look at it again on every run.

Revision ID: a0201316e289
Revises: 8cdfcc2f291e
Create Date: 2026-11-25 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import budapp.core.db

revision: str = "a0201316e289"
down_revision: str | None = "8cdfcc2f291e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("models", "datasets"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "files_purged_at", budapp.core.db.UTCDateTime(timezone=True), nullable=True
                )
            )


def downgrade() -> None:
    for table in ("datasets", "models"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("files_purged_at")
