"""usage records: the endpoint that answered, and an index on the time for retention

A nullable column (cheap on a large table); (endpoint_id, at) serves GET /endpoints/{id}/metrics
and (at) the retention sweep. Building an index locks writes to usage_records on PostgreSQL for
its duration: the meter keeps the calls in memory meanwhile and writes them after.

Revision ID: ca86ef2933ca
Revises: 03ca527e2afc
Create Date: 2026-11-25 03:05:21.363347
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ca86ef2933ca"
down_revision: str | None = "03ca527e2afc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_usage_records_endpoint_id_at", ["endpoint_id", "at"], unique=False
        )
        batch_op.create_index("ix_usage_records_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_at")
        batch_op.drop_index("ix_usage_records_endpoint_id_at")
        batch_op.drop_column("endpoint_id")
