"""An index for the incident queue: status, then id (newest first).

Revision ID: 0003
Revises: 0002

``GET /api/v1/incidents?status=open`` (the console's queue, the hottest read) orders by id
and pages by 50: with this index PostgreSQL reads the first 51 rows of the index instead of
every open incident plus a sort (benchmarks/api.py: 2,000 open incidents).

A database made by ``create_all`` of these models (unversioned, adopted at 0001) already has
the index: it is kept.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("incidents")}
    if "ix_incidents_status_id" not in existing:
        op.create_index("ix_incidents_status_id", "incidents", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidents_status_id", table_name="incidents")
