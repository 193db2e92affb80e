"""benchmarks: runs and their per-request records; leaderboard results gain their conditions

`benchmark_runs` holds a run's target, configuration, snapshot, progress and results;
`benchmark_requests` one row per request (keyed by run, stage and sequence). The catalogue's
`model_evaluations` gains what makes results comparable (`conditions`), what produced them
(`source_id`) and the endpoint measured with its runtime and device; existing rows get empty
conditions.

Revision ID: 463cc242ce9f
Revises: 5b1f0c3e7a21
Create Date: 2026-12-01 23:44:00.157488
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import budapp.core.db

revision: str = "463cc242ce9f"
down_revision: str | None = "5b1f0c3e7a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "benchmark_runs",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column(
            "target_kind",
            sa.Enum("endpoint", "router", "url", name="targetkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("endpoint_id", sa.Uuid(), nullable=True),
        sa.Column("router_id", sa.Uuid(), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
                "CANCELLED",
                name="benchmarkstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("status_message", sa.String(length=2000), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("api_key_key_id", sa.String(length=32), nullable=True),
        sa.Column("api_key_sealed", sa.Text(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("started_at", budapp.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", budapp.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", budapp.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", budapp.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", budapp.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_benchmark_runs_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_benchmark_runs_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_benchmark_runs_credential_id_credentials"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_benchmark_runs_endpoint_id_endpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_benchmark_runs_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_benchmark_runs_project_id_projects"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["router_id"],
            ["routers.id"],
            name=op.f("fk_benchmark_runs_router_id_routers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benchmark_runs")),
    )
    with op.batch_alter_table("benchmark_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_benchmark_runs_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(
            "ix_benchmark_runs_organization_id_status", ["organization_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_benchmark_runs_project_id_created_at", ["project_id", "created_at"], unique=False
        )

    op.create_table(
        "benchmark_requests",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("tpot_ms", sa.Float(), nullable=True),
        sa.Column("e2el_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("usage_reported", sa.Boolean(), nullable=False),
        sa.Column("chunk_ms", sa.JSON(), nullable=False),
        sa.Column("chunk_tokens", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["benchmark_runs.id"],
            name=op.f("fk_benchmark_requests_run_id_benchmark_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", "sequence", name=op.f("pk_benchmark_requests")),
    )
    with op.batch_alter_table("model_evaluations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("conditions", sa.String(length=255), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("source_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("endpoint_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("endpoint_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("runtime", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=255), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_model_evaluations_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_model_evaluations_source_id"), ["source_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_model_evaluations_endpoint_id_endpoints"),
            "endpoints",
            ["endpoint_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("model_evaluations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_model_evaluations_endpoint_id_endpoints"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_model_evaluations_source_id"))
        batch_op.drop_index(batch_op.f("ix_model_evaluations_endpoint_id"))
        batch_op.drop_column("device")
        batch_op.drop_column("runtime")
        batch_op.drop_column("endpoint_name")
        batch_op.drop_column("endpoint_id")
        batch_op.drop_column("source_id")
        batch_op.drop_column("conditions")

    op.drop_table("benchmark_requests")
    with op.batch_alter_table("benchmark_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_benchmark_runs_project_id_created_at")
        batch_op.drop_index("ix_benchmark_runs_organization_id_status")
        batch_op.drop_index(batch_op.f("ix_benchmark_runs_endpoint_id"))

    op.drop_table("benchmark_runs")
