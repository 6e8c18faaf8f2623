"""The audit store's first schema: heuristic_done, optimized, swap_audit, event_ref.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _source() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("source_topic", sa.String(249)),
        sa.Column("source_partition", sa.Integer()),
        sa.Column("source_offset", sa.BigInteger()),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "heuristic_done",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("dispatch_id", sa.String(128), nullable=False),
        sa.Column("company_id", sa.String(128), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("produced_at", sa.DateTime(), nullable=False),
        sa.Column("n_bookings", sa.Integer(), nullable=False),
        sa.Column("n_drivers", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        *_source(),
        sa.PrimaryKeyConstraint("event_id", name="pk_heuristic_done"),
    )
    op.create_index("ix_heuristic_done_dispatch_id", "heuristic_done", ["dispatch_id"])
    op.create_index(
        "ix_heuristic_done_service_date_produced_at",
        "heuristic_done",
        ["service_date", "produced_at"],
    )
    op.create_index("ix_heuristic_done_produced_at", "heuristic_done", ["produced_at"])

    op.create_table(
        "optimized",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("dispatch_id", sa.String(128), nullable=False),
        sa.Column("source_event_id", sa.String(128), nullable=False),
        sa.Column("company_id", sa.String(128), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(256), nullable=False),
        sa.Column("gap_before", sa.Integer(), nullable=False),
        sa.Column("gap_after", sa.Integer(), nullable=False),
        sa.Column("deadhead_km_before", sa.Float(), nullable=False),
        sa.Column("deadhead_km_after", sa.Float(), nullable=False),
        sa.Column("lateness_minutes_before", sa.Float(), nullable=False),
        sa.Column("lateness_minutes_after", sa.Float(), nullable=False),
        sa.Column("moves_proposed", sa.Integer(), nullable=False),
        sa.Column("moves_accepted", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("produced_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        *_source(),
        sa.PrimaryKeyConstraint("event_id", name="pk_optimized"),
    )
    for cols in (
        ["dispatch_id"],
        ["source_event_id"],
        ["service_date"],
        ["status"],
        ["model_version"],
        ["produced_at"],
    ):
        op.create_index(f"ix_optimized_{'_'.join(cols)}", "optimized", cols)

    op.create_table(
        "swap_audit",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("dispatch_id", sa.String(128), nullable=False),
        sa.Column("source_event_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(256), nullable=False),
        sa.Column("gap_before", sa.Integer(), nullable=False),
        sa.Column("gap_after", sa.Integer()),
        sa.Column("delta", sa.Float()),
        sa.Column("score", sa.Float()),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        *_source(),
        sa.PrimaryKeyConstraint("event_id", name="pk_swap_audit"),
    )
    for cols in (
        ["dispatch_id", "sequence"],
        ["source_event_id", "sequence"],
        ["decision", "reason"],
        ["reason"],
        ["model_version"],
        ["at"],
    ):
        op.create_index(f"ix_swap_audit_{'_'.join(cols)}", "swap_audit", cols)

    op.create_table(
        "event_ref",
        sa.Column("ref", sa.String(8), nullable=False),
        sa.Column("ref_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dispatch_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("ref", "ref_id", "event_id", name="pk_event_ref"),
    )
    op.create_index("ix_event_ref_event_id", "event_ref", ["event_id"])


def downgrade() -> None:
    for table in ("event_ref", "swap_audit", "optimized", "heuristic_done"):
        op.drop_table(table)
