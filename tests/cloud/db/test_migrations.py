"""Alembic: the first migration is today's schema; a database made by ``create_all`` is adopted."""

from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cityops.cli import app as cityops_app
from cloud.db.base import Base, create_all, make_engine
from cloud.db.devices import Device
from cloud.db.ops import ApiKey, Incident
from cloud.db.schema import BASELINE, current, head, target_metadata, upgrade
from cloud.ops.keys import create_api_key
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.runtime import build_runtime
from cloud.settings import CloudSettings
from tests.cloud.ops.builders import add_device, event

CREATE_ALL_TABLES = (
    "devices",
    "dead_letters",
    "ingest_seen_events",
    "incidents",
    "incident_events",
    "audit_log",
    "api_keys",
    "device_commands",
)


def _today() -> MetaData:
    """The tables ``create_all`` made before migrations existed (a dispatcher adds its own)."""
    target_metadata()
    keep = MetaData()
    for name in CREATE_ALL_TABLES:
        Base.metadata.tables[name].to_metadata(keep)
    return keep


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    url: str = request.getfixturevalue("postgres_db")
    return url


def test_the_first_migration_is_the_schema_create_all_makes(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert upgrade(engine) == (None, head())
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), _today()) == []
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
    assert f"{BASELINE} (head {head()}, up to date)" in result.output

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
