"""Alembic environment: runs on the connection handed in by ``cloud.db.schema``."""

from alembic import context
from sqlalchemy.engine import Connection

from cloud.db.tables import METADATA

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
