"""Alembic: the migrations make every table; a database made by ``create_all`` is adopted."""

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, Table, func, insert, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cityops.cli import app as cityops_app
from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.ops import ApiKey, Incident
from cloud.db.schema import BASELINE, current, head, prepare_schema, upgrade
from cloud.db.tables import METADATA, create_all
from cloud.db.users import User
from cloud.ops.keys import create_api_key, issue_ticket, redeem_ticket
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.ops.users import check_login, create_user
from cloud.runtime import build_runtime
from cloud.settings import CloudSettings
from shared.clock import utcnow
from tests.cloud.ops.builders import add_device, event

NEW_SINCE_BASELINE = {
    ("add_index", "ix_incidents_status_id"),  # 0003
    ("add_table", "users"),
    ("add_table", "user_sessions"),
    ("add_index", "ix_user_sessions_username"),
    ("add_table", "live_tickets"),
    ("add_index", "ix_live_tickets_expires_at"),
    ("add_table", "dispatch_deliveries"),
    ("add_index", "ix_dispatch_deliveries_incident_id"),
    ("add_index", "ix_dispatch_due"),
    ("add_column", "api_keys.expires_at"),
}
"""What the code declares beyond the baseline (the schema ``create_all`` made before migrations)."""


def _differences(engine: Engine, metadata: MetaData) -> list[object]:
    """What alembic's autogenerate would add or drop to make the database match *metadata*."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _named(diff: Any) -> tuple[str, str]:
    kind = diff[0]
    if kind in {"add_table", "add_index"}:
        return kind, diff[1].name
    if kind == "add_column":
        return kind, f"{diff[2]}.{diff[3].name}"
    return kind, repr(diff)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    url: str = request.getfixturevalue("postgres_db")
    return url


def test_the_first_migration_is_the_schema_create_all_made(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert upgrade(engine, BASELINE) == (None, BASELINE)
        assert {_named(d) for d in _differences(engine, METADATA)} == NEW_SINCE_BASELINE
    finally:
        engine.dispose()


def test_the_migrations_make_every_table_of_every_module(database_url: str) -> None:
    """A table or column added to a model without a migration fails here."""
    engine = make_engine(database_url)
    try:
        assert upgrade(engine) == (None, head())
        assert _differences(engine, METADATA) == []
        # The comparison does see a table no migration made.
        extra = MetaData()
        for table in METADATA.sorted_tables:
            table.to_metadata(extra)
        Table("not_migrated", extra, Column("id", Integer, primary_key=True))
        assert [_named(d) for d in _differences(engine, extra)] == [("add_table", "not_migrated")]
    finally:
        engine.dispose()


def test_a_database_at_the_baseline_is_upgraded_with_its_data(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, BASELINE)
        old = MetaData()  # the key table as the baseline made it: no expires_at yet
        old.reflect(engine, only=["api_keys"])
        with engine.begin() as conn:
            conn.execute(
                insert(old.tables["api_keys"]).values(
                    id="k0001",
                    name="desk",
                    role="operator",
                    departments=["*"],
                    secret_hash="0" * 64,
                    created_at=utcnow(),
                )
            )
        sessions = sessionmaker(engine, expire_on_commit=False)
        add_device(sessions, "dev-a")
        OpsService(sessions, Router(RoutingConfig.default())).apply_events([event()])
        assert upgrade(engine) == (BASELINE, head())
        assert _differences(engine, METADATA) == []
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Incident)) == 1
            assert session.get(Device, "dev-a") is not None
            row = session.get(ApiKey, "k0001")
            assert row is not None
            assert row.departments == ["*"]
            assert row.expires_at is None  # a key made before expiry existed never expires
            # The new tables work: a console user signs in, the key gets a live ticket.
            create_user(session, "ana", "a long enough passphrase", "operator")
            assert check_login(session, "ana", "a long enough passphrase") is not None
            assert redeem_ticket(session, issue_ticket(session, row.id)) is not None
    finally:
        engine.dispose()


def test_new_tables_that_create_all_already_made_are_kept(database_url: str) -> None:
    """Before 0002, every start ran ``create_all`` after the migrations: 0002 must accept that."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, BASELINE)
        create_all(engine)  # as prepare_schema did at 0001
        # That create_all did not know the dispatch outbox (the dispatcher made it, if it ran).
        METADATA.tables["dispatch_deliveries"].drop(engine)
        with Session(engine) as session:
            create_user(session, "ana", "a long enough passphrase", "operator")
        assert upgrade(engine) == (BASELINE, head())
        assert _differences(engine, METADATA) == []
        with Session(engine) as session:
            assert session.get(User, "ana") is not None
        prepare_schema(engine)  # every later start: nothing left to do
        assert current(engine) == head()
    finally:
        engine.dispose()


def test_a_create_all_database_is_upgraded_with_its_data(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    create_all(engine)  # as every cloud command did before migrations
    with Session(engine) as session:
        key = create_api_key(session, name="desk", role="operator", departments=["*"])
    sessions = sessionmaker(engine, expire_on_commit=False)
    add_device(sessions, "dev-a")
    OpsService(sessions, Router(RoutingConfig.default())).apply_events([event()])
    assert current(engine) is None
    engine.dispose()

    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url}))
    runner = CliRunner()
    result = runner.invoke(cityops_app, ["cloud", "db", "upgrade", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"unversioned -> {head()}" in result.output
    result = runner.invoke(cityops_app, ["cloud", "db", "current", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"{head()} (head {head()}, up to date)" in result.output

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Incident)) == 1
            assert session.get(Device, "dev-a") is not None
            assert session.get(ApiKey, key.split("_")[1]) is not None
        # Every cloud command starts by bringing the schema up to date: a no-op now.
        runtime = build_runtime(CloudSettings(database_url=database_url))
        runtime.engine.dispose()
        assert current(engine) == head()
    finally:
        engine.dispose()


def _prepare(url: str) -> None:
    engine = make_engine(url)
    try:
        prepare_schema(engine)
    finally:
        engine.dispose()


def test_processes_starting_together_on_one_sqlite_file_migrate_once(tmp_path: Path) -> None:
    """`cloud ingest --workers 2` on a fresh SQLite state database: both start, neither fails."""
    context = multiprocessing.get_context("fork")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'fresh-{attempt}.sqlite'}"
        workers = [context.Process(target=_prepare, args=(url,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0, 0, 0, 0]
        engine = make_engine(url)
        try:
            assert current(engine) == head()
        finally:
            engine.dispose()
