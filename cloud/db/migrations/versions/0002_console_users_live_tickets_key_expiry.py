"""Console users and sessions, live tickets, API key expiry, the dispatch outbox.

Revision ID: 0002
Revises: 0001

New since the baseline: ``users`` and ``user_sessions`` (console sign-in), ``live_tickets``
(one-use WebSocket tickets for API keys), ``api_keys.expires_at``, and ``dispatch_deliveries``
(the dispatcher's outbox, which it created for itself before).

Tolerant of what is already there. Before this migration existed, every cloud start ran
``create_all`` after the migrations (and the dispatcher created its table), so a database
stamped at 0001 (or an unversioned one that ``cloud.db.schema.upgrade`` stamps at 0001 because
it has the baseline's tables) may already hold any of these tables, their indexes, or the
``api_keys.expires_at`` column (``create_all`` used to ``ALTER`` it in). Each step first asks
the database (SQLAlchemy's inspector) and only creates what is missing; what exists was made
from the same model by ``create_all``, so it is kept as it is, rows included.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _create_table(name: str, *parts: sa.Column[object] | sa.Constraint) -> None:
    if not _has_table(name):
        op.create_table(name, *parts)


def _create_index(name: str, table: str, columns: list[str]) -> None:
    if name not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, unique=False)


def _add_column(table: str, column: sa.Column[object]) -> None:
    if column.name not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
        with op.batch_alter_table(table) as batch:
            batch.add_column(column)


def upgrade() -> None:
    _create_table(
        "users",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("auth_source", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    _create_table(
        "user_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["users.username"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    _create_index(op.f("ix_user_sessions_username"), "user_sessions", ["username"])
    _create_table(
        "live_tickets",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    _create_index(op.f("ix_live_tickets_expires_at"), "live_tickets", ["expires_at"])
    _create_table(
        "dispatch_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.String(length=63), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("change_type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_index(
        op.f("ix_dispatch_deliveries_incident_id"), "dispatch_deliveries", ["incident_id"]
    )
    _create_index("ix_dispatch_due", "dispatch_deliveries", ["status", "next_attempt_at"])
    _add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_dispatch_due", table_name="dispatch_deliveries")
    op.drop_index(op.f("ix_dispatch_deliveries_incident_id"), table_name="dispatch_deliveries")
    op.drop_table("dispatch_deliveries")
    op.drop_index(op.f("ix_live_tickets_expires_at"), table_name="live_tickets")
    op.drop_table("live_tickets")
    op.drop_index(op.f("ix_user_sessions_username"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_table("users")
