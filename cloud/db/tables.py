"""Every table module, imported: ``METADATA`` holds every table, for ``create_all`` and Alembic.

A new table module is imported here too; tests/cloud/db/test_migrations.py then wants its
migration. The table modules import ``Base`` from ``cloud.db.base``, which imports none of them.
"""

from sqlalchemy import Engine, MetaData

import cloud.db.devices
import cloud.db.ingest
import cloud.db.ops
import cloud.db.users
import cloud.dispatch.tables  # noqa: F401 - importing a table module registers its tables
from cloud.db.base import Base

METADATA: MetaData = Base.metadata
"""``Base.metadata`` with the tables of every module imported above."""


def create_all(engine: Engine) -> None:
    """Create every table that does not exist yet (idempotent; changes no existing table).

    Columns added to existing tables come from the migrations (``cloud.db.schema``).
    """
    METADATA.create_all(engine)
