"""The store's own identity: `store_meta` with a random `store_id`, made once per database.

The store consumer's default consumer group is named after it, so each store is filled
completely by a group of its own: two hosts with their own SQLite files each get every event,
workers sharing one PostgreSQL store share one group, and a new (or deleted and re-created)
database starts a fresh group that reads the topics from the beginning instead of inheriting
the committed offsets of the store it replaced.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_store_meta"),
    )
    op.bulk_insert(meta, [{"key": "store_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_meta")
