"""The state database's schema: Alembic migrations (``cityops cloud db upgrade|current``).

``prepare_schema`` runs at every cloud start: a database made before migrations existed (by
``create_all``, same tables as the first migration) is stamped at that migration, then every
newer migration is applied. Processes starting together never migrate at once: on PostgreSQL an
advisory lock, on a SQLite file an exclusive ``flock`` on ``<database>.migrate.lock`` beside it
(two ``cloud ingest --workers`` processes on one fresh SQLite state database raced before).
"""

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from cloud.db.tables import create_all

BASELINE = "0001"
"""The first migration: the schema ``create_all`` made before migrations existed."""
_MIGRATE_LOCK = 0x43_4F_4D_49_47  # "COMIG"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("cloud.db") / "migrations"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    with_script = ScriptDirectory.from_config(_bare_config())
    current = with_script.get_current_head()
    if current is None:
        raise RuntimeError("no migrations found")
    return current


def _bare_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("cloud.db") / "migrations"))
    return config


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: not under migrations yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Held while migrating a SQLite file (in-memory databases have one process anyway)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(f"{database}.migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to *revision*; return (before, after)."""
    with _sqlite_file_lock(engine):
        return _upgrade(engine, revision)


def _upgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
        context = MigrationContext.configure(conn)
        before = context.get_current_revision()
        config = alembic_config(conn)
        if before is None and inspect(conn).has_table("incidents"):
            command.stamp(config, BASELINE)  # made by create_all before migrations existed
        command.upgrade(config, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after


def prepare_schema(engine: Engine) -> None:
    """Migrate to the newest schema, then ``create_all`` as a safety net.

    The net is a no-op while every table has its migration (tests/cloud/db/test_migrations.py
    fails when one has not); it adds no columns to existing tables.
    """
    with _sqlite_file_lock(engine):
        _upgrade(engine, "head")
        create_all(engine)
