"""auth sessions: the identity provider's session id (the ID token's `sid`)

Back-channel logout names a provider session by its sid; a nullable column and its index.

Revision ID: 8cdfcc2f291e
Revises: ca86ef2933ca
Create Date: 2026-11-25 06:59:32.258170
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8cdfcc2f291e"
down_revision: str | None = "ca86ef2933ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_session_id", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "ix_auth_sessions_provider_session_id", ["provider_session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_sessions_provider_session_id")
        batch_op.drop_column("provider_session_id")
